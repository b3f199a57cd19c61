"""robosuite environment kind: Gymnasium adapter, deployment shifts, scripted demonstrator.

`make_robosuite_env(env_cfg, seed)` is registered as env kind "robosuite"; importing this
package does not import robosuite (the adapter does, when an env is made).
"""

from __future__ import annotations

from typing import Any

from rlkit2.config import store
from rlkit2.registry import register_env_kind

from .config import DEFAULT_OBS_KEYS, RobosuiteEnvConfig, ShiftConfig, as_config, refuse_imitation_settings


def make_robosuite_env(env_cfg: Any | None = None, seed: int | None = None, render_mode: str | None = None) -> Any:
    from .adapter import RobosuiteEnv

    env = RobosuiteEnv(env_cfg, seed=seed, render_mode=render_mode)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


store("robosuite_schema", RobosuiteEnvConfig, group="env")
store("robosuite_schema", RobosuiteEnvConfig, group="env/robosuite")
register_env_kind("robosuite", make_robosuite_env)

__all__ = ["DEFAULT_OBS_KEYS", "as_config", "RobosuiteEnvConfig", "ShiftConfig", "make_robosuite_env",
           "refuse_imitation_settings"]
