"""Gymnasium ids for the environments rlkit2 defines, under the `rlkit2/` namespace.

Registered when `rlkit2.envs` is imported (entry points are strings: nothing heavy, robosuite included, is
imported until an env is made):

    rlkit2/Lift-v0             robosuite Lift, Panda + OSC pose, low-dim observations (conf env=robosuite/lift)
    rlkit2/Can-v0              robosuite PickPlaceCan (conf env=robosuite/can)
    rlkit2/TextGeneration-v0   the text-generation env (a prompt in, a response out; conf env=text_synthetic)

Keyword arguments of `gym.make` are the env's config options, so a shifted deployment env is

    gym.make("rlkit2/Lift-v0", shift={"init": 0.1, "action_noise": 0.05}, horizon=80)

(robosuite: any field of `RobosuiteEnvConfig`, `shift` a dict or a `ShiftConfig`, plus `render_mode="rgb_array"`,
`render_camera`, `render_width`, `render_height`; text: any field of `TextEnvConfig`, plus `reward_fn`, `seed`).
The Gymnasium MuJoCo locomotion envs rlkit2 trains on are Gymnasium's own (`Hopper-v5`, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

NAMESPACE = "rlkit2"

# id -> the env config's defaults (match conf/env/robosuite/*.yaml)
ROBOSUITE_ENVS: dict[str, dict[str, Any]] = {
    f"{NAMESPACE}/Lift-v0": {"task": "Lift", "id": "robosuite-lift", "horizon": 200},
    f"{NAMESPACE}/Can-v0": {"task": "PickPlaceCan", "id": "robosuite-can", "horizon": 400},
}
TEXT_ENVS: dict[str, dict[str, Any]] = {
    f"{NAMESPACE}/TextGeneration-v0": {},
}


def make_robosuite(render_mode: str | None = None, render_camera: str = "agentview", render_width: int = 256,
                   render_height: int = 256, seed: int | None = None, **config: Any) -> gym.Env:
    """A `RobosuiteEnv` from config options as keywords (the `gym.make` entry point of the robosuite ids)."""
    from .robosuite.adapter import RobosuiteEnv
    from .robosuite.config import as_config

    shift = config.get("shift")
    if dataclasses.is_dataclass(shift) and not isinstance(shift, type):
        config["shift"] = dataclasses.asdict(shift)
    return RobosuiteEnv(as_config(config), seed=seed, render_mode=render_mode, render_camera=render_camera,
                        render_size=(int(render_height), int(render_width)))


def make_text(reward_fn: Any = None, seed: int = 0, evaluation: bool = False, render_mode: str | None = None,
              **config: Any) -> gym.Env:
    """A `TextGenerationEnv` from `TextEnvConfig` options as keywords (the entry point of the text id)."""
    from rlkit2.core import ConfigError

    from .text import make_text_env

    if render_mode is not None:
        raise ConfigError(f"render_mode={render_mode!r}: the text env does not render (its observations are text)")
    return make_text_env(config, seed, reward_fn=reward_fn, evaluation=evaluation)


def register_envs() -> list[str]:
    """Register every rlkit2 env id with Gymnasium (idempotent); returns the ids."""
    for env_id, defaults in ROBOSUITE_ENVS.items():
        if env_id not in gym.registry:
            # no TimeLimit wrapper: the adapter truncates at `horizon` itself
            gym.register(env_id, entry_point="rlkit2.envs.registration:make_robosuite", kwargs=dict(defaults),
                         disable_env_checker=False)
    for env_id, defaults in TEXT_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="rlkit2.envs.registration:make_text", kwargs=dict(defaults))
    return registered_ids()


def registered_ids() -> list[str]:
    """The rlkit2 ids in Gymnasium's registry."""
    return sorted(k for k in gym.registry if k.startswith(f"{NAMESPACE}/"))
