"""Deployment shifts applied to a live robosuite env: initial-state distribution and dynamics.

Each function is idempotent with respect to the nominal values it records on first use, so
a shift can be re-applied (or set back to zero) on the same env object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ShiftConfig

NOMINAL_ROBOT_NOISE = 0.02  # robosuite's "default" initialization_noise magnitude (Gaussian)


def _samplers(placement: Any) -> list[Any]:
    """The leaf samplers of a (possibly sequential composite) placement initializer."""
    if hasattr(placement, "samplers"):
        out: list[Any] = []
        for s in placement.samplers.values():
            out.extend(_samplers(s))
        return out
    return [placement]


def apply_init_shift(env: Any, shift: ShiftConfig) -> None:
    """Widen/displace object placement ranges and widen the robot's start-joint noise."""
    for s in _samplers(env.placement_initializer):
        if not hasattr(s, "x_range"):
            continue
        if not hasattr(s, "_rlkit_nominal"):
            s._rlkit_nominal = (tuple(s.x_range), tuple(s.y_range))
        (x0, x1), (y0, y1) = s._rlkit_nominal
        dx, dy = float(shift.init_offset[0]), float(shift.init_offset[1])
        w = float(shift.init) * float(shift.object_init_scale)
        s.x_range = [x0 - w + dx, x1 + w + dx]
        s.y_range = [y0 - w + dy, y1 + w + dy]
    noise = {"magnitude": NOMINAL_ROBOT_NOISE + float(shift.init) * float(shift.robot_init_scale), "type": "gaussian"}
    for robot in env.robots:
        robot.initialization_noise = dict(noise)
    # a hard reset rebuilds the robots from these configs: without this the robot-start shift was lost
    for config in getattr(env, "robot_configs", []):
        config["initialization_noise"] = dict(noise)


def _object_ids(env: Any) -> tuple[list[int], list[int]]:
    model = env.sim.model
    geoms, bodies = [], []
    for obj in getattr(env.model, "mujoco_objects", []):
        bodies.append(model.body_name2id(obj.root_body))
        for g in obj.contact_geoms:
            geoms.append(model.geom_name2id(g))
    return geoms, bodies


def apply_dynamics_shift(env: Any, shift: ShiftConfig) -> None:
    """Scale the objects' friction and mass in the compiled model (kept across soft resets)."""
    model = env.sim.model
    geoms, bodies = _object_ids(env)
    if not hasattr(env, "_rlkit_nominal_dyn"):
        env._rlkit_nominal_dyn = (model.geom_friction[geoms].copy(), model.body_mass[bodies].copy())
    friction0, mass0 = env._rlkit_nominal_dyn
    model.geom_friction[geoms] = friction0 * max(1.0 - float(shift.friction), 0.05)
    model.body_mass[bodies] = mass0 * (1.0 + float(shift.mass))


def noisy_action(action: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian action noise (the executed action is not the commanded one), clipped to [-1, 1]."""
    if std <= 0:
        return action
    return np.clip(action + rng.normal(0.0, std, size=action.shape), -1.0, 1.0)
