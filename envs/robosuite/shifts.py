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


BIN_WALL = 0.01  # half-thickness of robosuite's bin walls (bins_arena.xml); the interior ends this far inside


def _visual_only(sampler: Any) -> bool:
    """True when every object the sampler places is visual-only (PickPlace's target markers in bin 2)."""
    objs = list(getattr(sampler, "mujoco_objects", []) or [])
    return bool(objs) and all(getattr(o, "obj_type", "all") == "visual" for o in objs)


def _bin_centre_bounds(env: Any, sampler: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Bounds (x, y) on the sampled object *centres*, relative to the sampler's reference, that keep every
    object the sampler places inside bin 1's interior; None when the env has no bins (Lift: table placement)."""
    bin_pos, bin_size = getattr(env, "bin1_pos", None), getattr(env, "bin_size", None)
    if bin_pos is None or bin_size is None:
        return None
    radius = max((float(o.horizontal_radius) for o in getattr(sampler, "mujoco_objects", []) or []), default=0.0)
    half = np.asarray(bin_size, float)[:2] / 2 - BIN_WALL - radius  # room for the object's horizontal radius
    half = np.maximum(half, 0.0)
    centre = np.asarray(bin_pos, float)[:2] - np.asarray(sampler.reference_pos, float)[:2]
    return centre - half, centre + half


def _clip_range(a: float, b: float, lo: float, hi: float, r_eff: float) -> tuple[float, float]:
    """Clip a sampler range [a, b] so the centres it draws, [a + r_eff, b - r_eff] (robosuite's
    `ensure_object_boundary_in_range` shrinks the range by the object radius r_eff), stay in [lo, hi].
    A range that already fits is returned unchanged (bit for bit)."""
    a2, b2 = min(max(a, lo - r_eff), hi + r_eff), min(max(b, lo - r_eff), hi + r_eff)
    if (a2, b2) != (a, b) and b2 - a2 < 2 * r_eff:  # clipping inverted the drawn interval: use one point
        m = min(max((a + b) / 2, lo), hi)
        a2, b2 = m - r_eff, m + r_eff
    return a2, b2


def apply_init_shift(env: Any, shift: ShiftConfig) -> None:
    """Widen/displace object placement ranges and widen the robot's start-joint noise.

    Rule for every leaf placement sampler (x/y ranges relative to its `reference_pos`):
    - visual-only samplers (every object `obj_type == "visual"`, e.g. PickPlace's target markers in bin 2)
      are left at their nominal ranges: they are not part of the initial state a policy acts on;
    - the range is widened by `shift.init * shift.object_init_scale` metres on every side and displaced by
      `shift.init_offset` (x, y);
    - in envs with bins (PickPlace*, e.g. PickPlaceCan: `bin1_pos`, `bin_size`), the widened range is then
      clipped so that every sampled object centre lies at least its horizontal radius (the largest of the
      sampler's objects) inside bin 1's interior (`bin1_pos` +- (`bin_size` / 2 - `BIN_WALL`)): objects start
      inside the bin and on its floor, and never on or across a wall. A nominal range is never changed;
    - table placements (Lift) are widened without a bound (the behaviour existing Lift results used).
    """
    for s in _samplers(env.placement_initializer):
        if not hasattr(s, "x_range") or _visual_only(s):
            continue
        if not hasattr(s, "_rlkit_nominal"):
            s._rlkit_nominal = (tuple(s.x_range), tuple(s.y_range))
        (x0, x1), (y0, y1) = s._rlkit_nominal
        dx, dy = float(shift.init_offset[0]), float(shift.init_offset[1])
        w = float(shift.init) * float(shift.object_init_scale)
        x_range, y_range = [x0 - w + dx, x1 + w + dx], [y0 - w + dy, y1 + w + dy]
        bounds = _bin_centre_bounds(env, s)
        if bounds is not None:
            radius = max((float(o.horizontal_radius) for o in s.mujoco_objects), default=0.0)
            r_eff = radius if getattr(s, "ensure_object_boundary_in_range", False) else 0.0
            (lx, ly), (hx, hy) = bounds
            x_range = list(_clip_range(x_range[0], x_range[1], float(lx), float(hx), r_eff))
            y_range = list(_clip_range(y_range[0], y_range[1], float(ly), float(hy), r_eff))
        s.x_range, s.y_range = x_range, y_range
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
