"""Shared networks for control agents: MLPs, policies and critic ensembles.

Critic ensembles (twin Q, IQL's Q, Q_sarsa) are *one* module with stacked weights
evaluated by a batched matmul (`torch.baddbmm`), not a Python list of networks:
one kernel launch per layer whatever the ensemble size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "elu": nn.ELU}


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256), activation: str = "relu",
        layer_norm: bool = False, dropout: float = 0.0) -> nn.Sequential:
    """Plain MLP: Linear -> [LayerNorm] -> act -> [Dropout] ... -> Linear."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class EnsembleLinear(nn.Module):
    """`n` independent linear layers applied to `n` stacked inputs: (n, B, in) -> (n, B, out)."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        # Same init as nn.Linear, member by member, so an ensemble of 1 behaves like nn.Linear.
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """`n` MLPs with stacked weights. Input (B, in) is shared, or (n, B, in) per member."""

    def __init__(self, n: int, in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256),
                 activation: str = "relu", layer_norm: bool = False):
        super().__init__()
        self.n = n
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.norms = nn.ModuleList(nn.LayerNorm(h) for h in hidden) if layer_norm else None
        self.out = EnsembleLinear(n, dims[-1], out_dim)
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n, *x.shape)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if self.norms is not None:
                x = self.norms[i](x)
            x = self.act(x)
        return self.out(x)


class QEnsemble(nn.Module):
    """`n` Q-functions Q_i(s, a) in one module; returns (n, B)."""

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2, hidden: Sequence[int] = (256, 256),
                 layer_norm: bool = False):
        super().__init__()
        self.n = n
        self.net = EnsembleMLP(n, obs_dim + act_dim, 1, hidden, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([obs, act], dim=-1)).squeeze(-1)


class VEnsemble(nn.Module):
    """`n` state-value functions V_i(s); returns (n, B)."""

    def __init__(self, obs_dim: int, n: int = 1, hidden: Sequence[int] = (256, 256), layer_norm: bool = False):
        super().__init__()
        self.net = EnsembleMLP(n, obs_dim, 1, hidden, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class DeterministicPolicy(nn.Module):
    """a = max_action * tanh(MLP(s)), as in TD3 / TD3+BC."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), max_action: float = 1.0):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.net(obs))


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class TanhGaussianPolicy(nn.Module):
    """Squashed Gaussian policy (SAC, IQL's AWR actor, BC with a stochastic head).

    `forward` returns (sampled action, its log-prob, deterministic action).
    `log_prob(obs, act)` scores given actions (clamped inside (-1, 1) for the atanh).
    With `state_dependent_std=False` the log-std is a free parameter (IQL's choice).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), max_action: float = 1.0,
                 state_dependent_std: bool = True, dropout: float = 0.0):
        super().__init__()
        self.state_dependent_std = state_dependent_std
        self.act_dim = act_dim
        out = 2 * act_dim if state_dependent_std else act_dim
        self.net = mlp(obs_dim, out, hidden, dropout=dropout)
        self.log_std = None if state_dependent_std else nn.Parameter(torch.zeros(act_dim))
        self.max_action = max_action

    def _dist(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(obs)
        if self.state_dependent_std:
            mu, log_std = out.chunk(2, dim=-1)
        else:
            assert self.log_std is not None
            mu, log_std = out, self.log_std.expand_as(out)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        return mu, log_std

    def forward(self, obs: torch.Tensor, deterministic: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, log_std = self._dist(obs)
        std = log_std.exp()
        if deterministic:
            u = mu
        else:
            # a given Generator draws on its own device (learners keep theirs on the CPU), then moves to mu's
            noise = torch.randn(mu.shape, generator=generator, device=generator.device if generator is not None
                                else mu.device, dtype=mu.dtype).to(mu.device)
            u = mu + std * noise
        logp = _normal_log_prob(u, mu, log_std) - _tanh_log_det(u)
        return self.max_action * torch.tanh(u), logp, self.max_action * torch.tanh(mu)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mu, log_std = self._dist(obs)
        y = (act / self.max_action).clamp(-1 + 1e-6, 1 - 1e-6)
        u = torch.atanh(y)
        return _normal_log_prob(u, mu, log_std) - _tanh_log_det(u)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        mu, _ = self._dist(obs)
        return self.max_action * torch.tanh(mu)


def _normal_log_prob(x: torch.Tensor, mu: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((x - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def _tanh_log_det(u: torch.Tensor) -> torch.Tensor:
    # log(1 - tanh(u)^2), numerically stable form.
    return (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


class Normalizer(nn.Module):
    """Fixed observation normalisation (dataset mean/std), saved with the policy."""

    mean: torch.Tensor  # registered buffers (typed here: nn.Module's __getattr__ is untyped)
    std: torch.Tensor

    def __init__(self, dim: int, eps: float = 1e-3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.eps = eps

    def fit(self, data: torch.Tensor) -> Normalizer:
        self.mean.copy_(data.mean(0))
        self.std.copy_(data.std(0) + self.eps)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageEncoder(nn.Module):
    """robomimic-style visual encoder: uint8 images (B, H, W, C) -> /255 -> conv stack (3x3, ReLU; the first
    layer strides 2) -> spatial softmax (each channel's expected (x, y) position, in [-1, 1]) or global average
    pooling -> linear -> (B, feature_dim)."""

    def __init__(self, in_channels: int, channels: Sequence[int] = (32, 32), feature_dim: int = 64,
                 pool: str = "spatial_softmax"):
        super().__init__()
        if pool not in ("spatial_softmax", "avg"):
            raise ValueError(f"pool={pool!r}: expected 'spatial_softmax' or 'avg'")
        layers: list[nn.Module] = []
        c = in_channels
        for i, h in enumerate(channels):
            layers += [nn.Conv2d(c, h, 3, stride=2 if i == 0 else 1, padding=1), nn.ReLU()]
            c = h
        self.conv = nn.Sequential(*layers)
        self.pool = pool
        self.out = nn.Linear(2 * c if pool == "spatial_softmax" else c, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.conv(images.permute(0, 3, 1, 2).float() / 255.0)
        if self.pool == "avg":
            return self.out(x.mean(dim=(2, 3)))
        b, c, h, w = x.shape
        attention = torch.softmax(x.reshape(b, c, h * w), dim=-1)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        keypoints = torch.cat([(attention * gx.reshape(-1)).sum(-1), (attention * gy.reshape(-1)).sum(-1)], dim=-1)
        return self.out(keypoints)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging target <- (1 - tau) target + tau source, in one fused op per tensor list."""
    with torch.no_grad():
        t: list[torch.Tensor] = list(target.parameters())
        s: list[torch.Tensor] = list(source.parameters())
        torch._foreach_lerp_(t, s, tau)
