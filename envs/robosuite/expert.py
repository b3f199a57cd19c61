"""Scripted demonstrators: `make_scripted_expert(env)` picks the one for the env's task (`SCRIPTED_TASKS`):
Lift's in `lift_expert.py`, PickPlaceCan's in `can_expert.py`."""

from __future__ import annotations

from typing import Any

from rlkit2.core import BaseActor, ConfigError

from .can_expert import ScriptedCanExpert
from .lift_expert import ScriptedLiftExpert

# robosuite tasks with a scripted expert
SCRIPTED_TASKS = ("Lift", "PickPlaceCan")


def check_scripted_task(task: str) -> None:
    """Refuse a task no scripted expert solves, naming those that have one (before any env is built)."""
    if str(task) not in SCRIPTED_TASKS:
        raise ConfigError(f"env.task='{task}': no scripted expert for this task (scripted experts: "
                          f"{', '.join(SCRIPTED_TASKS)}); for other tasks give recorded demos, env.dataset=<robomimic "
                          "HDF5> (rlkit2.data.robomimic.read_robomimic)")


def make_scripted_expert(env: Any, *, noise: float = 0.0, seed: int = 0) -> BaseActor:
    """The scripted expert for the robosuite adapter `env`'s task (`env.cfg.task`), reading `env`'s observation
    layout; a task without one is refused (`check_scripted_task`)."""
    task = str(env.cfg.task)
    check_scripted_task(task)
    if task == "PickPlaceCan":
        return ScriptedCanExpert.from_env(env, noise=noise, seed=seed)
    return ScriptedLiftExpert(env.obs_slices, noise=noise, seed=seed)
