"""SAC's losses as pure functions of tensors."""

from __future__ import annotations

import torch


def soft_target(rewards: torch.Tensor, terminals: torch.Tensor, next_q_min: torch.Tensor,
                next_logp: torch.Tensor, alpha: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma (1 - d) (min_i Q_i'(s', a') - alpha log pi(a'|s'))."""
    return rewards + gamma * (1.0 - terminals) * (next_q_min - alpha * next_logp)


def actor_loss(q_pi_min: torch.Tensor, logp: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return (alpha * logp - q_pi_min).mean()


def temperature_loss(log_alpha: torch.Tensor, logp: torch.Tensor, target_entropy: float) -> torch.Tensor:
    return -(log_alpha * (logp.detach() + target_entropy)).mean()
