"""POIR losses and the in-distribution score: pure functions of tensors."""

from __future__ import annotations

import torch


def dynamics_loss(pred_delta: torch.Tensor, target_delta: torch.Tensor, huber_delta: float = 1.0) -> torch.Tensor:
    """Huber loss of the ensemble's predicted normalised state change; (E, B, D) each, summed over D.
    Huber rather than MSE: deployment data has rare jumps (a pushed cube, a quaternion sign flip)."""
    return torch.nn.functional.huber_loss(pred_delta, target_delta, reduction="none", delta=huber_delta).sum(-1).mean()


def knn_sq_distance(x: torch.Tensor, reference: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Mean squared distance (per dim) from each row of x (N, d) to its k nearest rows of reference (M, d)."""
    d2 = torch.cdist(x, reference).pow(2) / x.shape[-1]
    k = min(k, reference.shape[0])
    if k == 1:
        return d2.min(-1).values
    return d2.topk(k, dim=-1, largest=False).values.mean(-1)


def knn_with_index(x: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dim mean squared distance to the nearest reference row and that row's index."""
    d2 = torch.cdist(x, reference).pow(2) / x.shape[-1]
    best = d2.min(-1)
    return best.values, best.indices


def episode_progress(terminals: torch.Tensor) -> torch.Tensor:
    """t / (T - 1) within each episode of a flat sequence whose episodes end where terminals == 1."""
    ends = torch.nonzero(terminals > 0.5).flatten().tolist()
    if not ends or ends[-1] != len(terminals) - 1:
        ends.append(len(terminals) - 1)
    out, start = torch.zeros(len(terminals)), 0
    for end in ends:
        n = end - start + 1
        out[start:end + 1] = torch.linspace(0.0, 1.0, n) if n > 1 else 1.0
        start = end + 1
    return out


def mppi_weights(returns: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax weights of candidate returns (K,), temperature relative to their spread (scale-free)."""
    scale = returns.std().clamp_min(1e-6) * temperature
    return torch.softmax((returns - returns.max()) / scale, dim=0)
