"""Gymnasium MuJoCo locomotion under Gymnasium ids (`Hopper-v5`) or dataset names.

A dataset name - D4RL's (`hopper-medium-v2`, D4RL's own file) or a generated one (`hopper-v5-medium`,
made by `rlkit2-data make`) - selects both the v5 environment (whose spaces match D4RL's v2 datasets)
and, unless `dataset` says otherwise, the dataset of that name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

from rlkit2.config import store
from rlkit2.core import ConfigError
from rlkit2.registry import register_env_kind


@dataclasses.dataclass
class GymEnvConfig:
    kind: str = "gym"
    id: str = "Hopper-v5"  # a Gymnasium id, or a dataset name: "hopper-medium-v2" (D4RL) or "hopper-v5-medium"
    dataset: str = ""  # offline agents: a D4RL-format HDF5 path, a dataset name, or "minari:<dataset id>"
    max_episode_steps: int = 1000
    num_envs: int = 1  # >1: vectorised online collection, one batched policy forward for all envs
    # "sync" (one process) or "async" (a worker process per env). Measured on 2 cores (Hopper, policy 256-256):
    # sync x4 = 1.39x one env, async x4 = 0.81x (IPC costs more than a MuJoCo step); async pays off for slow envs.
    vectorization: str = "sync"
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)


def gym_id(env_cfg: Any) -> str:
    """The Gymnasium id behind `env_cfg.id` (dataset names resolve to their v5 environment)."""
    name = str(env_cfg.id)
    try:
        from rlkit2.data.names import resolve_env_id
    except ImportError:  # pragma: no cover - data package always ships with rlkit2
        return name
    return resolve_env_id(name)[0]


def make_gym_env(env_cfg: Any, seed: int | None = None, render_mode: str | None = None) -> gym.Env:
    env_id = gym_id(env_cfg)
    kwargs = dict(env_cfg.kwargs or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_id, max_episode_steps=int(env_cfg.max_episode_steps), **kwargs)
    except gym.error.Error as e:
        raise ConfigError(f"env.id='{env_cfg.id}': Gymnasium cannot make '{env_id}': {e}") from e
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


store("gym_schema", GymEnvConfig, group="env")
register_env_kind("gym", make_gym_env)
