"""BC losses: pure functions of tensors."""

from __future__ import annotations

import torch


def gaussian_nll(log_prob: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of demo actions under the policy (log_prob: (B,))."""
    return -log_prob.mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).sum(-1).mean()
