"""CQL's conservative penalty as pure functions of tensors."""

from __future__ import annotations

import math

import torch


def conservative_penalty(q_data: torch.Tensor, q_sampled: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """CQL(H): temperature * logsumexp(Q(s, a_i) / temperature over sampled a_i) - Q(s, a_data), mean over the batch.

    q_data [n, B] (each ensemble member's Q of the dataset actions), q_sampled [n, B, N] (already importance-
    weighted if wanted); returns [n], one penalty a critic member. Pushes Q down on the actions it would pick and
    up on the dataset's, so out-of-distribution actions cannot look better than the data's.
    """
    lse = temperature * torch.logsumexp(q_sampled / temperature, dim=-1)
    return (lse - q_data).mean(dim=-1)


def importance_weighted(q_uniform: torch.Tensor, q_policy: torch.Tensor, logp_policy: torch.Tensor,
                        q_next_policy: torch.Tensor, logp_next_policy: torch.Tensor, act_dim: int,
                        max_action: float = 1.0) -> torch.Tensor:
    """The N = 3k sampled-action values, each minus the log-density it was drawn from (the authors' `min_q_version=3`).

    q_uniform / q_policy / q_next_policy [n, B, k]: Q(s, .) at uniform actions, at pi(.|s) samples and at
    pi(.|s') samples; logp_* [B, k] the policy's log-densities of its samples. A uniform action on
    [-max_action, max_action]^d has density (2 max_action)^-d.
    """
    log_uniform = -act_dim * math.log(2.0 * max_action)
    return torch.cat([q_uniform - log_uniform, q_policy - logp_policy.detach().unsqueeze(0),
                      q_next_policy - logp_next_policy.detach().unsqueeze(0)], dim=-1)


def lagrange_loss(log_alpha_prime: torch.Tensor, penalty: torch.Tensor, target_action_gap: float) -> torch.Tensor:
    """Dual step of CQL-Lagrange: alpha' rises while the (detached) gap exceeds its target, falls below it."""
    alpha_prime = log_alpha_prime.exp().clamp(0.0, 1e6)
    return -(alpha_prime * (penalty.detach() - target_action_gap)).mean()
