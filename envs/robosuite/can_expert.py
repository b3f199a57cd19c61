"""Scripted demonstrator for PickPlaceCan: a waypoint state machine on top of the OSC pose controller.

above the can -> descend -> close the gripper -> lift out of bin 1 -> carry over the can's target
quadrant of bin 2 -> lower -> open the gripper -> retreat upwards (robosuite counts the can as placed only
once the gripper is > ~4 cm from it). Recoveries (so demonstrations contain a few natural ones): the can
slips out while lifted or carried -> "above the can" wherever it fell; the descent stalls high (a finger rests
on a bin wall the can leans against, which the init shift allows, or the controller settles off centre) -> turn
the fingers a quarter turn, hover again; the can lands off target -> pick it up again; the lowering stalls (a
tipped can held above its centre) -> release there.

What it reads: the can's position from the adapter's "object" observation (robosuite 1.5's "object-state"
for PickPlaceCan is `Can_to_robot0_eef_pos(3), Can_to_robot0_eef_quat(4), Can_pos(3), Can_quat(4)`; the
offset of `Can_pos` is taken from `RobosuiteEnv.object_layout()`), the gripper's position from
"robot0_eef_pos" and, when observed, its orientation from "robot0_eef_quat" (held pointing straight down:
holding the reset orientation instead, whose tilt the robot-init shift scales, drove the wrist's pitch joint
into its limit over far cans, where the OSC then went astray).
What the observation lacks, the target, is read once from the env: robosuite's
`target_bin_placements[object_id]` (the centre of the can's quadrant of bin 2; fixed, it does not depend on
the episode) - see `ScriptedCanExpert.from_env`.
Actions are normalised OSC deltas: 1.0 = `OSC_MAX_DELTA` metres (position) / `OSC_MAX_ROT` rad per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlkit2.core import BaseActor

from .config import OSC_MAX_DELTA, OSC_MAX_ROT

TOP_DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # (x, y, z, w): the Panda hand pointing straight down, fingers along y
# robosuite 1.5's PickPlaceCan "object-state" layout (RobosuiteEnv.object_layout() reports the live one)
CAN_OBJECT_LAYOUT: tuple[tuple[str, int], ...] = (("Can_to_robot0_eef_pos", 3), ("Can_to_robot0_eef_quat", 4),
                                                  ("Can_pos", 3), ("Can_quat", 4))


def _offset_of(layout: Sequence[tuple[str, int]], name: str) -> int:
    """Offset of the sub-observation `name` inside the concatenated "object" observation."""
    i = 0
    for key, size in layout:
        if key == name:
            return i
        i += int(size)
    raise KeyError(f"object observation has no '{name}' (layout: {[k for k, _ in layout]})")


def _yawed(quat: np.ndarray, yaw: float) -> np.ndarray:
    """`quat` (x, y, z, w) turned by `yaw` rad about the world's z axis (Rz(yaw) * quat)."""
    x, y, z, w = quat
    c, s = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.array([c * x - s * y, c * y + s * x, c * z + s * w, c * w - s * z])


def _quat_error(current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Axis-angle rotation (world frame) taking `current` to `target`; quaternions are robosuite's (x, y, z, w)."""
    cx, cy, cz, cw = current
    tx, ty, tz, tw = target
    # q_err = target * conj(current)
    w = tw * cw + tx * cx + ty * cy + tz * cz
    x = -tw * cx + tx * cw - ty * cz + tz * cy
    y = -tw * cy + ty * cw - tz * cx + tx * cz
    z = -tw * cz + tz * cw - tx * cy + ty * cx
    if w < 0:  # the short way round
        w, x, y, z = -w, -x, -y, -z
    v = np.array([x, y, z])
    s = float(np.linalg.norm(v))
    if s < 1e-9:
        return np.zeros(3)
    return v / s * 2.0 * np.arctan2(s, w)


class ScriptedCanExpert(BaseActor):
    """Actor for PickPlaceCan from the adapter's flat observation.

    `obs_slices` is `RobosuiteEnv.obs_slices` (needs "object" and "robot0_eef_pos"; "robot0_eef_quat" is
    used when present), `target_xy` the (x, y) the can is carried to (the centre of its quadrant of bin 2),
    `object_layout` the "object" observation's layout (`RobosuiteEnv.object_layout()`).
    Distances in metres. `hover`, `grasp_z`: gripper heights above the can's centre (`Can_pos`, 6 cm above its
    bottom, 4 cm below its top); `retreat`: how far the gripper rises after the release; `carry_z`: the
    gripper's world height while carrying (bins' floors at z = 0.8, the can hangs ~7 cm below the gripper);
    `place_z`: the can centre's height at release (resting: 0.86); `place_tol`: how far (x, y) from
    `target_xy` a released can counts as off target (its quadrant is +-9.75 x +-12.25 cm); `slip`: how far the
    can may move relative to the gripper, since the grasp, before it counts as dropped. `gain`, `ori_gain`:
    proportional gains (position, orientation). `noise`: std of Gaussian noise on the arm's action dims.
    """

    APPROACH, DESCEND, GRASP, LIFT, CARRY, LOWER, RELEASE, RETREAT = range(8)

    def __init__(self, obs_slices: Mapping[str, slice], target_xy: Sequence[float] | np.ndarray, *,
                 object_layout: Sequence[tuple[str, int]] = CAN_OBJECT_LAYOUT, gain: float = 1.5,
                 hover: float = 0.08, grasp_z: float = 0.0, grasp_steps: int = 8, carry_z: float = 1.02,
                 place_z: float = 0.87, release_steps: int = 6, retreat: float = 0.10, place_tol: float = 0.08,
                 slip: float = 0.03, ori_gain: float = 1.0, noise: float = 0.0, seed: int = 0):
        for k in ("object", "robot0_eef_pos"):
            if k not in obs_slices:
                raise KeyError(f"ScriptedCanExpert needs observation key '{k}' (have {sorted(obs_slices)})")
        self.sl = dict(obs_slices)
        self.can_at = _offset_of(object_layout, "Can_pos")
        if self.can_at + 3 > self.sl["object"].stop - self.sl["object"].start:
            raise ValueError(f"object observation is {self.sl['object'].stop - self.sl['object'].start} wide; "
                             f"the layout {list(object_layout)} puts Can_pos at {self.can_at}")
        self.target_xy = np.asarray(target_xy, dtype=np.float64).reshape(2)
        self.gain, self.hover, self.grasp_z, self.grasp_steps = gain, hover, grasp_z, grasp_steps
        self.carry_z, self.place_z = carry_z, place_z  # world heights (bins' floors are at z = 0.8)
        self.release_steps, self.retreat, self.place_tol, self.slip = release_steps, retreat, place_tol, slip
        self.ori_gain = ori_gain
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.observe_first(None)

    @classmethod
    def from_env(cls, env: Any, **kwargs: Any) -> ScriptedCanExpert:
        """The expert for the adapter `env` (a `RobosuiteEnv` on PickPlaceCan): the target is read from the
        robosuite env (`target_bin_placements[object_id]`), which the observation does not contain."""
        rs = env.unwrapped_robosuite
        target = np.asarray(rs.target_bin_placements[int(rs.object_id)], dtype=np.float64)
        return cls(env.obs_slices, target[:2], object_layout=env.object_layout(), **kwargs)

    def observe_first(self, observation: object) -> None:
        self.phase, self.timer, self.last_z, self.last_gap = self.APPROACH, 0, 0.0, np.inf
        self.hold: np.ndarray | None = None  # eef minus can at the grasp: carried so the *can* lands on target
        self.yaw = 0.0  # the fingers' turn about world z from TOP_DOWN (0 or pi/2)
        # recoveries this episode (diagnostics): "slip" (the can left the grasp), "wall" (a quarter turn after a
        # stalled descent), "off_target" (released off target), "drift" (hovered again while descending)
        self.events: dict[str, int] = {"slip": 0, "wall": 0, "off_target": 0, "drift": 0}

    def _move(self, eef: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.clip(self.gain * (target - eef) / OSC_MAX_DELTA, -1.0, 1.0)

    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float64)
        can = obs[self.sl["object"]][self.can_at:self.can_at + 3]
        eef = obs[self.sl["robot0_eef_pos"]]
        quat = obs[self.sl["robot0_eef_quat"]] if "robot0_eef_quat" in self.sl else None
        grip = -1.0
        above = can + np.array([0.0, 0.0, self.hover])
        target = eef.copy()
        if self.phase == self.APPROACH:
            # rise first when below the hover height and off to the side: do not sweep the fingers into a wall
            xy_gap = float(np.linalg.norm((above - eef)[:2]))
            target = above if eef[2] > can[2] + 0.5 * self.hover or xy_gap < 0.02 else \
                np.array([eef[0], eef[1], above[2]])
            if xy_gap < 0.01 and abs(above[2] - eef[2]) < 0.02:
                self.phase, self.timer, self.last_z, self.last_gap = self.DESCEND, 0, float(eef[2]), xy_gap
        if self.phase == self.DESCEND:
            target = can + np.array([0.0, 0.0, self.grasp_z])
            xy_gap = float(np.linalg.norm((can - eef)[:2]))
            # stalled: for 5 steps neither lower (2 mm) nor closer over the can (1 mm) than ever before in this
            # descent (records, not the last step: the gap jitters around the realign threshold)
            if eef[2] < self.last_z - 0.002 or xy_gap < self.last_gap - 0.001:
                self.timer, self.last_z, self.last_gap = 0, min(self.last_z, float(eef[2])), min(self.last_gap, xy_gap)
            else:
                self.timer += 1
            if xy_gap > 0.02:  # drifted: hover again
                self.phase, target = self.APPROACH, above
                self.events["drift"] += 1
            elif abs(target[2] - eef[2]) < 0.01 or (self.timer >= 5 and eef[2] < target[2] + 0.03):
                # (the palm meets the can's top ~1 cm above its centre: a descent stalled there grasps too;
                # grasping higher, ~2.5 cm up, the fingers hold the can's narrower top and it slips out more)
                self.phase, self.timer = self.GRASP, 0
            elif self.timer >= 5:
                # stalled high: a finger rests on a wall the can stands against (the init shift allows it),
                # fingers across it. Turn them a quarter turn, to close along the wall, and hover again.
                # (+pi/2 turns the last joint away from its upper limit, towards the middle of its range)
                self.yaw = np.pi / 2 if self.yaw == 0 else 0.0
                self.phase, self.timer, target = self.APPROACH, 0, above
                self.events["wall"] += 1
            elif xy_gap > 0.01:  # off centre: realign before going lower (an off-centre grasp takes the rim)
                target[2] = eef[2]
        if self.phase == self.GRASP:
            target, grip = eef.copy(), 1.0
            self.timer += 1
            if self.timer >= self.grasp_steps:
                self.phase, self.hold = self.LIFT, (eef - can).copy()
        held = self.hold if self.hold is not None else np.zeros(3)  # read after GRASP sets it
        if self.phase in (self.LIFT, self.CARRY, self.LOWER):
            grip = 1.0
            if np.linalg.norm(eef - can - held) > self.slip:  # the can slipped out: start over from where it is
                self.phase, grip, target = self.APPROACH, -1.0, np.array([eef[0], eef[1], above[2]])
                self.events["slip"] += 1
        if self.phase == self.LIFT:
            target = np.array([eef[0], eef[1], self.carry_z])
            if eef[2] > self.carry_z - 0.03:
                self.phase, self.timer, self.last_gap = self.CARRY, 0, np.inf
        if self.phase == self.CARRY:
            goal_xy = self.target_xy + held[:2]
            target = np.array([goal_xy[0], goal_xy[1], self.carry_z])
            gap = float(np.linalg.norm(can[:2] - self.target_xy))
            # near the arm's reach the OSC settles short of the goal: lower once close, or close and stalled
            self.timer = self.timer + 1 if gap > self.last_gap - 0.001 else 0
            self.last_gap = gap
            if gap < 0.03 or (gap < self.place_tol - 0.02 and self.timer >= 5):
                self.phase, self.timer, self.last_z = self.LOWER, 0, float(eef[2])
        if self.phase == self.LOWER:
            goal_xy = self.target_xy + held[:2]
            target = np.array([goal_xy[0], goal_xy[1], eef[2] + (self.place_z - can[2])])
            # stalled (5 steps without a new lowest height by 2 mm): the fingers are on the floor, e.g. holding
            # a tipped can higher than its centre; release there
            if eef[2] < self.last_z - 0.002:
                self.timer, self.last_z = 0, float(eef[2])
            else:
                self.timer += 1
            if can[2] < self.place_z + 0.01 or self.timer >= 5:
                self.phase, self.timer = self.RELEASE, 0
        if self.phase == self.RELEASE:
            target = eef.copy()
            self.timer += 1
            if self.timer >= self.release_steps:
                self.phase, self.last_z = self.RETREAT, float(eef[2])
        if self.phase == self.RETREAT:
            # up from the release height (not from the can: a can wedged in the open fingers would lead it on)
            target = np.array([eef[0], eef[1], self.last_z + self.retreat])
            # robosuite ends the episode once the can rests in its quadrant and the gripper is clear of it;
            # still here, clear of the can, with the can off target (it tipped or bounced out): pick it up again
            if eef[2] > can[2] + 0.06 and np.linalg.norm(can[:2] - self.target_xy) > self.place_tol:
                self.phase, self.hold, target = self.APPROACH, None, above
                self.events["off_target"] += 1
        pos = self._move(eef, target)
        rot = np.zeros(3)
        if quat is not None and self.ori_gain > 0:
            goal = _yawed(TOP_DOWN, self.yaw)
            rot = np.clip(self.ori_gain * _quat_error(quat, goal) / OSC_MAX_ROT, -1.0, 1.0)
        action = np.concatenate([pos, rot, [grip]])
        if self.noise > 0:
            action[:6] += self.rng.normal(0.0, self.noise, 6)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
