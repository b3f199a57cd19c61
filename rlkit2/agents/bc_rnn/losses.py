"""BC-RNN-GMM losses: pure functions of tensors.

A GMM over actions: K diagonal Gaussians with means `means` (..., K, A), stds `stds` (..., K, A) and mixture
logits `logits` (..., K); the leading dims are (batch, time) in training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gmm_stds(raw: torch.Tensor, activation: str, min_std: float) -> torch.Tensor:
    """Component stds from the network's raw scales (robomimic: activation(raw) + min_std)."""
    if activation == "softplus":
        return F.softplus(raw) + min_std
    if activation == "exp":
        return raw.exp() + min_std
    raise ValueError(f"std activation {activation!r}: expected 'softplus' or 'exp'")


def gmm_log_prob(actions: torch.Tensor, means: torch.Tensor, stds: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log p(a) under the mixture, (...,): logsumexp_k [log w_k + sum_d log N(a_d; mu_kd, sigma_kd)]."""
    z = (actions.unsqueeze(-2) - means) / stds
    component = (-0.5 * z**2 - stds.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(F.log_softmax(logits, dim=-1) + component, dim=-1)


def sequence_nll(log_prob: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood averaged over the real steps of the windows (log_prob, mask: (B, T); mask 0 on
    padding)."""
    return -(log_prob * mask).sum() / mask.sum().clamp_min(1.0)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Squared action error summed over action dims, averaged over the real steps."""
    return (((pred - target) ** 2).sum(-1) * mask).sum() / mask.sum().clamp_min(1.0)
