"""IQL's losses as pure functions of tensors."""

from __future__ import annotations

import torch


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean |tau - 1(diff < 0)| * diff^2 with diff = Q(s, a) - V(s): V tends to the tau-expectile of Q."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff**2).mean()


def q_target(rewards: torch.Tensor, terminals: torch.Tensor, next_v: torch.Tensor, gamma: float) -> torch.Tensor:
    """r + gamma (1 - d) V(s'): no max over actions, so no out-of-distribution action is ever queried."""
    return rewards + gamma * (1.0 - terminals) * next_v


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over the (n, B) members of the mean squared error to the V-bootstrapped target."""
    return ((q - target.unsqueeze(0)) ** 2).mean(dim=1).sum()


def awr_weights(advantage: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """exp(beta * A) clipped at `max_weight`, detached."""
    return torch.exp(beta * advantage.detach()).clamp(max=max_weight)


def awr_actor_loss(log_prob: torch.Tensor, advantage: torch.Tensor, beta: float, max_weight: float) -> torch.Tensor:
    """Advantage-weighted regression: -mean exp(beta A) log pi(a | s)."""
    return -(awr_weights(advantage, beta, max_weight) * log_prob).mean()


def reward_scale(episode_returns: torch.Tensor | list[float], scale: float = 1000.0) -> float:
    """scale / (max episode return - min episode return), IQL's locomotion reward normalisation."""
    r = torch.as_tensor(episode_returns, dtype=torch.float64)
    spread = float(r.max() - r.min())
    return scale / spread if spread > 1e-8 else 1.0
