"""Offline BC's loss as a pure function of tensors."""

from __future__ import annotations

import torch


def bc_loss(pi: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Mean squared error to the dataset's actions: TD3+BC's BC term, (pi(s) - a)^2, without the Q term."""
    return ((pi - actions) ** 2).mean()
