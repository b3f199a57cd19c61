"""TD3's losses as pure functions of tensors."""

from __future__ import annotations

import torch


def bellman_target(rewards: torch.Tensor, terminals: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * (1 - terminal) * Q'(s', a'). A time-limit truncation is not a terminal."""
    return rewards + gamma * (1.0 - terminals) * next_q


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over ensemble members (n, B) of the mean squared TD error, as TD3 sums its twin losses."""
    return ((q - target.unsqueeze(0)) ** 2).mean(dim=1).sum()


def smoothed_target_action(next_action: torch.Tensor, noise: torch.Tensor, noise_clip: float,
                           max_action: float) -> torch.Tensor:
    """Target policy smoothing: a' = clip(pi'(s') + clip(eps, -c, c), -max, max); `noise` is eps ~ N(0, sigma)."""
    return (next_action + noise.clamp(-noise_clip, noise_clip)).clamp(-max_action, max_action)


def deterministic_actor_loss(q_pi: torch.Tensor) -> torch.Tensor:
    """-E[Q(s, pi(s))] on the first critic."""
    return -q_pi.mean()
