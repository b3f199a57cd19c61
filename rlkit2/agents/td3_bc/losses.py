"""TD3+BC's losses as pure functions of tensors. The critic side is TD3's (rlkit2.agents.td3.losses)."""

from __future__ import annotations

import torch

from rlkit2.agents.td3.losses import bellman_target, critic_loss, smoothed_target_action

__all__ = ["bc_lambda", "bellman_target", "critic_loss", "smoothed_target_action", "td3_bc_actor_loss"]


def bc_lambda(q_pi: torch.Tensor, alpha: float) -> torch.Tensor:
    """lambda = alpha / mean|Q(s, pi(s))|, detached: the Q term's scale no longer depends on reward scale."""
    return alpha / q_pi.abs().mean().detach().clamp_min(1e-6)


def td3_bc_actor_loss(q_pi: torch.Tensor, pi_actions: torch.Tensor, data_actions: torch.Tensor,
                      alpha: float, bc_weight: float = 1.0) -> torch.Tensor:
    """-lambda * mean Q(s, pi(s)) + bc_weight * mean (pi(s) - a)^2 (mean over batch and action dims, as TD3+BC)."""
    return -bc_lambda(q_pi, alpha) * q_pi.mean() + bc_weight * ((pi_actions - data_actions) ** 2).mean()
