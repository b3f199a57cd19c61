"""Weight-space operations on state dicts: averaging (WARM), task vectors, SLERP and LITI (WARP), EMA.

Everything here is a pure function of `{name: tensor}` mappings (a `state_dict()`), so the same code
merges reward models, policies or a toy linear layer, and is tested on vectors whose answer is known.

Conventions:
- Only floating-point tensors are combined. Integer/bool buffers (position ids, counters) must agree
  across the inputs and are copied from the first one; a mismatch is a `DataError`, since it means the
  models do not share an architecture and averaging them is meaningless.
- Inputs are never modified; outputs are fresh tensors (except the in-place `ema_update`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from rlkit2.core import ConfigError, DataError
from rlkit2.networks import soft_update

StateDict = Mapping[str, torch.Tensor]


def _check_same_keys(sds: Sequence[StateDict], what: str = "state dicts") -> list[str]:
    if not sds:
        raise DataError(f"need at least one of the {what}, got none")
    keys = list(sds[0].keys())
    for i, sd in enumerate(sds[1:], start=1):
        if set(sd.keys()) != set(keys):
            missing = sorted(set(keys) - set(sd.keys()))[:3]
            extra = sorted(set(sd.keys()) - set(keys))[:3]
            raise DataError(f"{what} #{i} has different keys from #0 (missing {missing}, extra {extra}): "
                            "models must share one architecture to be merged")
        for k in keys:
            if sd[k].shape != sds[0][k].shape:
                raise DataError(f"{what} #{i} key '{k}' has shape {tuple(sd[k].shape)}, "
                                f"#0 has {tuple(sds[0][k].shape)}")
    return keys


def _is_float(t: torch.Tensor) -> bool:
    return torch.is_floating_point(t)


def _copy_non_float(k: str, sds: Sequence[StateDict]) -> torch.Tensor:
    first = sds[0][k]
    for i, sd in enumerate(sds[1:], start=1):
        if not torch.equal(sd[k], first):
            raise DataError(f"non-float buffer '{k}' differs between state dict #0 and #{i}; cannot merge")
    return first.clone()


# --------------------------------------------------------------------------- averaging (WARM, model soups)


def average_state_dicts(sds: Sequence[StateDict], weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Weighted mean of state dicts: sum_i w_i * sd_i, weights default to uniform (WARM's plain mean).

    Weights are normalised to sum to one. Averaging is done in float64 and cast back, so the mean of
    M identical models is that model bit for bit.
    """
    keys = _check_same_keys(sds)
    m = len(sds)
    w = torch.full((m,), 1.0 / m, dtype=torch.float64) if weights is None else torch.tensor(weights).double()
    if w.numel() != m:
        raise ConfigError(f"average_state_dicts: got {w.numel()} weights for {m} state dicts")
    if (w < 0).any() or w.sum() <= 0:
        raise ConfigError(f"average_state_dicts: weights must be non-negative with a positive sum, got {w.tolist()}")
    w = w / w.sum()
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        ref = sds[0][k]
        if not _is_float(ref):
            out[k] = _copy_non_float(k, sds)
            continue
        if all(sd[k] is ref or torch.equal(sd[k], ref) for sd in sds[1:]):
            out[k] = ref.detach().clone()  # exact: no rounding when every model agrees
            continue
        acc = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device)
        for wi, sd in zip(w.tolist(), sds, strict=True):
            acc.add_(sd[k].detach().to(torch.float64), alpha=wi)
        out[k] = acc.to(ref.dtype)
    return out


# --------------------------------------------------------------------------- task vectors


def task_vector(sd: StateDict, init: StateDict) -> dict[str, torch.Tensor]:
    """delta = theta - theta_init for every float tensor (non-float entries are dropped)."""
    keys = _check_same_keys([init, sd])
    return {k: sd[k].detach() - init[k].detach() for k in keys if _is_float(init[k])}


def apply_task_vector(init: StateDict, delta: Mapping[str, torch.Tensor],
                      scale: float = 1.0) -> dict[str, torch.Tensor]:
    """theta_init + scale * delta; entries without a delta (non-float buffers) are copied from init."""
    out = {}
    for k, v in init.items():
        out[k] = v.detach() + scale * delta[k].to(v.dtype) if k in delta else v.detach().clone()
    extra = set(delta) - set(init)
    if extra:
        raise DataError(f"task vector has keys the init lacks: {sorted(extra)[:3]}")
    return out


# --------------------------------------------------------------------------- SLERP (WARP stage 2)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-8) -> torch.Tensor:
    """Spherical interpolation of two (task) vectors of any shape, as WARP defines it.

    Omega = angle(a, b);  slerp = sin((1 - t) Omega) / sin(Omega) * a + sin(t Omega) / sin(Omega) * b.
    The inputs are *not* normalised (WARP applies it to raw task vectors): for orthogonal unit vectors
    and t = 1/2 the result is (a + b) / sqrt(2), of norm 1, where LERP would give norm 1/sqrt(2).
    Falls back to linear interpolation when the vectors are (anti)parallel or one is zero (sin(Omega) ~ 0).
    """
    if not 0.0 <= t <= 1.0:
        raise ConfigError(f"slerp: t must lie in [0, 1], got {t}")
    a64, b64 = a.detach().to(torch.float64), b.detach().to(torch.float64)
    na, nb = a64.norm(), b64.norm()
    if na < eps or nb < eps:
        return ((1 - t) * a64 + t * b64).to(a.dtype)
    cos = torch.clamp((a64.flatten() @ b64.flatten()) / (na * nb), -1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    if so < 1e-6:
        return ((1 - t) * a64 + t * b64).to(a.dtype)
    out = torch.sin((1 - t) * omega) / so * a64 + torch.sin(t * omega) / so * b64
    return out.to(a.dtype)


def slerp_task_vectors(deltas: Sequence[Mapping[str, torch.Tensor]],
                       lambdas: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """Merge M task vectors by SLERP, layer by layer (each tensor of the state dict is one "layer").

    M = 2: slerp(delta_1, delta_2, lambda) per tensor, lambda = 1/2 by default.
    M > 2 (reconstruction; WARP applies SLERP pairwise): fold left,
    merged_m = slerp(merged_{m-1}, delta_m, t_m) with t_m = w_m / (w_1 + ... + w_m), so every run gets the
    weight it would have in a uniform (or `lambdas`-weighted) mean.
    """
    if not deltas:
        raise DataError("slerp_task_vectors: need at least one task vector")
    keys = _check_same_keys(list(deltas), "task vectors")
    m = len(deltas)
    w = [1.0 / m] * m if lambdas is None else [float(x) for x in lambdas]
    if len(w) != m or any(x < 0 for x in w) or sum(w) <= 0:
        raise ConfigError(f"slerp_task_vectors: need {m} non-negative weights with a positive sum, got {w}")
    out = {k: deltas[0][k].detach().clone() for k in keys}
    cum = w[0]
    for i in range(1, m):
        cum += w[i]
        t = w[i] / cum if cum > 0 else 0.0
        out = {k: slerp(out[k], deltas[i][k], t) for k in keys}
    return out


def slerp_merge(init: StateDict, sds: Sequence[StateDict], lambdas: Sequence[float] | None = None
                ) -> dict[str, torch.Tensor]:
    """WARP stage 2: theta_slerp = theta_init + SLERP of the task vectors (theta_i - theta_init), layer-wise."""
    deltas = [task_vector(sd, init) for sd in sds]
    return apply_task_vector(init, slerp_task_vectors(deltas, lambdas))


# --------------------------------------------------------------------------- LITI (WARP stage 3)


def lerp_state_dicts(a: StateDict, b: StateDict, t: float) -> dict[str, torch.Tensor]:
    """(1 - t) * a + t * b on float tensors (t = 0 gives a, t = 1 gives b exactly)."""
    keys = _check_same_keys([a, b])
    out = {}
    for k in keys:
        if not _is_float(a[k]):
            out[k] = _copy_non_float(k, [a, b])
        elif t == 0.0:
            out[k] = a[k].detach().clone()
        elif t == 1.0:
            out[k] = b[k].detach().clone()
        else:
            out[k] = torch.lerp(a[k].detach(), b[k].detach().to(a[k].dtype), t)
    return out


def liti(init: StateDict, merged: StateDict, eta: float = 0.3) -> dict[str, torch.Tensor]:
    """WARP stage 3, Linear Interpolation Towards Initialisation: (1 - eta) * theta_init + eta * theta_merged."""
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"liti: eta must lie in [0, 1], got {eta}")
    return lerp_state_dicts(init, merged, eta)


# --------------------------------------------------------------------------- EMA anchor (WARP stage 1, BOND)


def ema_update(anchor: nn.Module, model: nn.Module, rate: float) -> None:
    """theta_anchor <- (1 - rate) theta_anchor + rate theta (in place; parameters only).

    The one Polyak mechanism of rlkit2 (`networks.soft_update`), named for its use as WARP's mu and
    BOND's eta. `rate = 0` freezes the anchor (plain KL-to-reference RL); `rate = 1` copies the policy.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"ema_update: rate must lie in [0, 1], got {rate}")
    if rate > 0.0:
        soft_update(anchor, model, rate)


# --------------------------------------------------------------------------- diagnostics


def state_dict_norm(sd: Mapping[str, torch.Tensor]) -> float:
    """Global L2 norm over all float tensors (the norm of a task vector)."""
    total = sum(float(v.detach().to(torch.float64).pow(2).sum()) for v in sd.values() if _is_float(v))
    return math.sqrt(total)


def cosine_similarity(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Global cosine between two task vectors (how orthogonal independent RL runs are)."""
    keys = [k for k in a if _is_float(a[k])]
    dot = sum(float((a[k].double() * b[k].double()).sum()) for k in keys)
    na, nb = state_dict_norm(a), state_dict_norm(b)
    return dot / (na * nb) if na > 0 and nb > 0 else 0.0
