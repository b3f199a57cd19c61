"""The scripted Lift demonstrator: a waypoint state machine on top of the OSC pose controller.

above the cube -> descend -> close the gripper -> lift; if the cube slips out during the lift
it goes back to "above the cube" (so demonstrations contain a few natural recoveries).
Actions are normalised OSC deltas: 1.0 = `OSC_MAX_DELTA` metres per control step.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rlkit2.core import BaseActor

from .config import OSC_MAX_DELTA


class ScriptedLiftExpert(BaseActor):
    """Actor for Lift from the adapter's flat observation. `obs_slices` is `RobosuiteEnv.obs_slices`
    (needs "object" (cube_pos first) and "robot0_eef_pos")."""

    APPROACH, DESCEND, GRASP, LIFT = range(4)

    def __init__(self, obs_slices: Mapping[str, slice], *, gain: float = 1.5, hover: float = 0.06,
                 grasp_steps: int = 6, lift_height: float = 0.12, noise: float = 0.0, seed: int = 0):
        for k in ("object", "robot0_eef_pos"):
            if k not in obs_slices:
                raise KeyError(f"ScriptedLiftExpert needs observation key '{k}' (have {sorted(obs_slices)})")
        self.sl = dict(obs_slices)
        self.gain, self.hover, self.grasp_steps, self.lift_height = gain, hover, grasp_steps, lift_height
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.observe_first(None)

    def observe_first(self, observation: object) -> None:
        self.phase, self.timer, self.lift_z = self.APPROACH, 0, 0.0

    def _move(self, eef: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.clip(self.gain * (target - eef) / OSC_MAX_DELTA, -1.0, 1.0)

    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float64)
        cube = obs[self.sl["object"]][:3]
        eef = obs[self.sl["robot0_eef_pos"]]
        grip = -1.0
        if self.phase == self.APPROACH:
            target = cube + np.array([0.0, 0.0, self.hover])
            if np.linalg.norm((target - eef)[:2]) < 0.01 and abs(target[2] - eef[2]) < 0.02:
                self.phase = self.DESCEND
        if self.phase == self.DESCEND:
            target = cube.copy()
            if np.linalg.norm((cube - eef)[:2]) > 0.02:  # drifted: hover again
                self.phase, target = self.APPROACH, cube + np.array([0.0, 0.0, self.hover])
            elif abs(cube[2] - eef[2]) < 0.01:
                self.phase, self.timer = self.GRASP, 0
        if self.phase == self.GRASP:
            target, grip = eef.copy(), 1.0
            self.timer += 1
            if self.timer >= self.grasp_steps:
                self.phase, self.lift_z = self.LIFT, eef[2] + self.lift_height
        if self.phase == self.LIFT:
            target, grip = np.array([eef[0], eef[1], self.lift_z]), 1.0
            if np.linalg.norm(cube - eef) > 0.03:  # cube slipped out: start over
                self.phase, grip = self.APPROACH, -1.0
                target = cube + np.array([0.0, 0.0, self.hover])
        pos = self._move(eef, target)
        action = np.concatenate([pos, np.zeros(3), [grip]])
        if self.noise > 0:
            action[:6] += self.rng.normal(0.0, self.noise, 6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
