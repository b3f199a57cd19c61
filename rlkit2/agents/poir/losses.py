"""POIR losses and the in-distribution score: pure functions of tensors."""

from __future__ import annotations

import torch


def dynamics_loss(pred_delta: torch.Tensor, target_delta: torch.Tensor) -> torch.Tensor:
    """MSE of the ensemble's predicted normalised state change; (E, B, D) each, summed over D, mean elsewhere."""
    return ((pred_delta - target_delta) ** 2).sum(-1).mean()


def knn_sq_distance(x: torch.Tensor, reference: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Mean squared distance (per dim) from each row of x (N, d) to its k nearest rows of reference (M, d)."""
    d2 = torch.cdist(x, reference).pow(2) / x.shape[-1]
    k = min(k, reference.shape[0])
    if k == 1:
        return d2.min(-1).values
    return d2.topk(k, dim=-1, largest=False).values.mean(-1)


def mppi_weights(returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax weights of candidate returns (K,), temperature relative to their spread (scale-free)."""
    scale = returns.std().clamp_min(1e-6) * temperature
    return torch.softmax((returns - returns.max()) / scale, dim=0)
