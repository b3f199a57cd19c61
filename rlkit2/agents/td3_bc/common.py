"""Helpers shared by the offline control agents (TD3+BC, IQL, Qsarsa-AC/AC2).

- `offline_agent_builder`: the `make_agent` of an offline learner whose greedy policy is `policy_module` (each
  agent's builder.py makes its own with it).
- `dataset_normalizer`: the dataset's observation mean/std as a `Normalizer`.
- `NormalizedPolicy`: policy = Normalizer -> network, so a saved policy carries its statistics.
- `member_forward`: one member of a stacked `QEnsemble` (TD3+BC's actor uses Q1 only),
  without running the other members.
- `episode_returns_from_transitions`: episode returns from (s, s', terminal) arrays alone
  (IQL's reward scale), for replays that do not keep `timeouts`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from rlkit2.config import to_config
from rlkit2.core import Agent, DataError, EnvSpec
from rlkit2.networks import Normalizer, QEnsemble


def offline_agent_builder(learner_cls: type, config_cls: type) -> Callable[..., Agent]:
    """`make_agent(config, spec, replay, seed)` for an offline learner: config converted to `config_cls`
    (`rlkit2.config.to_config`), the evaluation actor runs `learner.policy_module` (normaliser inside) on the
    learner's device (the replay's, `rlkit2.learners.learner_device`), no exploration actor."""

    def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
        from rlkit2.actors import TorchPolicyActor

        learner = learner_cls(to_config(config, config_cls), spec, replay, seed)
        policy = TorchPolicyActor(learner.policy_module, action_low=spec.action_low, action_high=spec.action_high,
                                  device=learner.device)
        return Agent(learner, policy, None)

    return make_agent


def dataset_normalizer(replay: Any, obs_dim: int, enabled: bool = True) -> Normalizer:
    norm = Normalizer(obs_dim)
    if enabled and len(replay) > 1:
        obs = torch.from_numpy(np.ascontiguousarray(replay.arrays()["observations"]))
        norm.fit(obs)
    return norm


class NormalizedPolicy(nn.Module):
    """obs -> policy(normalizer(obs)); what the evaluation actor runs and a checkpoint saves."""

    def __init__(self, normalizer: Normalizer, policy: nn.Module, head: str | None = None):
        super().__init__()
        self.normalizer = normalizer
        self.policy = policy
        self.head = head  # e.g. "mode" for stochastic policies evaluated deterministically

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(obs)
        return getattr(self.policy, self.head)(x) if self.head else self.policy(x)


def member_forward(q: QEnsemble, obs: torch.Tensor, act: torch.Tensor, member: int = 0) -> torch.Tensor:
    """Q_member(s, a) of a stacked ensemble as (B,), costing one member's matmuls."""
    net: Any = q.net
    x = torch.cat([obs, act], dim=-1)
    for i, layer in enumerate(net.layers):
        x = torch.addmm(layer.bias[member], x, layer.weight[member])
        if net.norms is not None:
            x = net.norms[i](x)
        x = net.act(x)
    return torch.addmm(net.out.bias[member], x, net.out.weight[member]).squeeze(-1)


def episode_returns_from_transitions(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Undiscounted return of each episode in insertion-ordered transitions.

    An episode ends at row i when `terminals[i]` is set or when row i+1 does not start at
    `next_observations[i]` (a timeout, or a row dropped at a boundary); the last row always ends one.
    """
    rew = np.asarray(arrays["rewards"], np.float64).reshape(-1)
    n = len(rew)
    if n == 0:
        raise DataError("dataset is empty: cannot compute episode returns")
    obs, nobs = arrays["observations"], arrays["next_observations"]
    ends = np.asarray(arrays["terminals"]).reshape(-1) > 0.5
    if n > 1:
        jump = ~np.all(np.isclose(nobs[:-1], obs[1:], atol=1e-6), axis=-1)
        ends[:-1] |= jump
    ends[-1] = True
    episode = np.concatenate([[0], np.cumsum(ends)[:-1]])
    return np.bincount(episode, weights=rew)
