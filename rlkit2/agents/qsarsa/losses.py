"""Losses of the Q_sarsa estimator and of Qsarsa-AC / Qsarsa-AC2, as pure functions of tensors.

Reconstruction (docs/algorithms/qsarsa.md: the paper's exact regularisers and weights were not found). The
paper fixes the idea -- regularise the learned critic and/or actor towards Q_sarsa ~ Q^{pi_beta}
instead of towards pi_beta -- and builds on TD3 with TD3+BC as the main baseline. We choose:

* critic penalty (both algorithms):  eta * mean_i mean_B (Q_i(s, pi(s)) - Q_sarsa(s, pi(s)))^2, pi(s) and
  Q_sarsa detached: the critic is pulled, at the policy's own actions, towards the behaviour value
  there, which curbs the over-estimation of actions the data does not support;
* optional target blend (ablation, off by default):
  bootstrap (1 - beta) min_i Qbar_i(s', a~') + beta Qbar_sarsa(s', a~');
* actor (Qsarsa-AC2 only): Q_sarsa as a second critic in the TD3+BC objective,
  -lambda * mean[(1 - kappa) Q_1(s, pi(s)) + kappa Q_sarsa(s, pi(s))] + bc_weight * (pi(s) - a)^2,
  lambda = alpha / mean|the bracket|. Qsarsa-AC keeps TD3+BC's actor (kappa = 0).

With eta = beta = kappa = 0 every loss here equals TD3+BC's on the same batch (tested).
"""

from __future__ import annotations

import torch

from rlkit2.agents.td3_bc.losses import bc_lambda, bellman_target


def sarsa_target(rewards: torch.Tensor, terminals: torch.Tensor, next_q_sarsa: torch.Tensor,
                 gamma: float) -> torch.Tensor:
    """r + gamma (1 - d) Qbar_sarsa(s', a') with a' the dataset's next action; (n, B) members -> (n, B)."""
    return rewards + gamma * (1.0 - terminals) * next_q_sarsa


def sarsa_loss(q_sarsa: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over members of the mean squared SARSA TD error (each member bootstraps from its own target).

    `weight` (B,) in {0, 1} drops rows whose target is unknown (a' missing after a timeout); the mean is
    over the kept rows.
    """
    sq = (q_sarsa - target) ** 2
    if weight is None:
        return sq.mean(dim=-1).sum()
    return ((sq * weight).sum(dim=-1) / weight.sum().clamp_min(1.0)).sum()


def blended_bootstrap(next_q_min: torch.Tensor, next_q_sarsa: torch.Tensor, beta: float) -> torch.Tensor:
    """(1 - beta) min_i Qbar_i(s', a~') + beta Qbar_sarsa(s', a~')."""
    return (1.0 - beta) * next_q_min + beta * next_q_sarsa


def critic_target(rewards: torch.Tensor, terminals: torch.Tensor, next_q_min: torch.Tensor,
                  next_q_sarsa: torch.Tensor | None, gamma: float, beta: float) -> torch.Tensor:
    boot = next_q_min if next_q_sarsa is None or beta == 0.0 else blended_bootstrap(next_q_min, next_q_sarsa, beta)
    return bellman_target(rewards, terminals, boot, gamma)


def sarsa_critic_penalty(q_pi: torch.Tensor, q_sarsa_pi: torch.Tensor) -> torch.Tensor:
    """mean over members and batch of (Q_i(s, pi(s)) - Q_sarsa(s, pi(s)))^2; Q_sarsa is a fixed target."""
    return ((q_pi - q_sarsa_pi.detach().unsqueeze(0)) ** 2).mean()


def qsarsa_critic_loss(q_data: torch.Tensor, target: torch.Tensor, q_pi: torch.Tensor | None,
                       q_sarsa_pi: torch.Tensor | None, eta: float) -> torch.Tensor:
    """TD3's twin TD loss + eta * sarsa_critic_penalty."""
    td = ((q_data - target.unsqueeze(0)) ** 2).mean(dim=1).sum()
    if eta == 0.0 or q_pi is None or q_sarsa_pi is None:
        return td
    return td + eta * sarsa_critic_penalty(q_pi, q_sarsa_pi)


def qsarsa_actor_loss(q_pi: torch.Tensor, q_sarsa_pi: torch.Tensor | None, pi_actions: torch.Tensor,
                      data_actions: torch.Tensor, alpha: float, kappa: float, bc_weight: float = 1.0) -> torch.Tensor:
    """-lambda mean[(1 - kappa) Q_1(s, pi) + kappa Q_sarsa(s, pi)] + bc_weight mean (pi - a)^2."""
    value = q_pi if kappa == 0.0 or q_sarsa_pi is None else (1.0 - kappa) * q_pi + kappa * q_sarsa_pi
    return -bc_lambda(value, alpha) * value.mean() + bc_weight * ((pi_actions - data_actions) ** 2).mean()
