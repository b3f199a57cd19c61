"""Gymnasium adapter for robosuite 1.5 manipulation tasks (low-dim observations, headless).

robosuite's own GymWrapper fails Gymnasium's env checker (float64 obs, no seeding through
`reset(seed=...)`), hence this adapter: float32 `Box` observations made of `obs_keys`
concatenated in order, `Box(-1, 1)` actions, `terminated` on success (when
`terminate_on_success`), `truncated` at the horizon, and `info["success"]` from
`env._check_success()` so `rlkit2.core.evaluate` reports `eval/success_rate`.
Deployment shifts (envs/robosuite/shifts.py) are applied at construction and every reset.
robosuite is imported here, lazily from the package's maker.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit2.core import ConfigError

from .config import DEFAULT_OBS_KEYS, RobosuiteEnvConfig, ShiftConfig, as_config
from .shifts import apply_dynamics_shift, apply_init_shift, noisy_action

# robomimic names -> robosuite observation keys
_ALIASES = {"object": "object-state"}


def _controller_config(robot: str, controller: str) -> dict[str, Any]:
    from robosuite.controllers import load_composite_controller_config

    cfg = load_composite_controller_config(controller="BASIC", robot=robot)
    # Keep only the arm; BASIC also lists torso/head/base/legs, which a Panda lacks (robosuite warns per part).
    arm = cfg["body_parts"]["right"]
    if controller != arm["type"]:
        from robosuite.controllers import load_part_controller_config

        arm = {**load_part_controller_config(default_controller=controller), "gripper": arm.get("gripper")}
    cfg["body_parts"] = {"right": arm}
    return cfg


def _headless_gl() -> None:
    """Without a display, offscreen rendering needs EGL (GPU or Mesa) or OSMesa: default MUJOCO_GL to egl."""
    if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        os.environ["MUJOCO_GL"] = "egl"


class RobosuiteEnv(gym.Env):
    """A robosuite task as a Gymnasium env. Build it from a `RobosuiteEnvConfig` (or its OmegaConf node).

    `render_mode="rgb_array"`: `render()` returns an (H, W, 3) uint8 frame from robosuite's offscreen renderer
    (camera `render_camera`, size `render_size` = (H, W)); headless machines need EGL or OSMesa
    (`MUJOCO_GL=egl`, the default here without a display, or `MUJOCO_GL=osmesa`).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, cfg: RobosuiteEnvConfig | Any | None = None, seed: int | None = None, *,
                 render_mode: str | None = None, render_camera: str = "agentview",
                 render_size: tuple[int, int] = (256, 256)):
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode={render_mode!r}: robosuite envs render 'rgb_array' (offscreen) only")
        self.render_mode = render_mode
        self.render_camera = str(render_camera)
        self.render_size = (int(render_size[0]), int(render_size[1]))
        if render_mode is not None:
            _headless_gl()
        try:
            import robosuite as suite
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ConfigError("env.kind='robosuite' needs robosuite: pip install 'rlkit2[robosuite]'") from e
        logging.getLogger("robosuite_logs").setLevel(logging.ERROR)
        self.cfg: RobosuiteEnvConfig = as_config(cfg)
        self.metadata = {**self.metadata, "render_fps": int(self.cfg.control_freq)}
        self.shift: ShiftConfig = self.cfg.shift
        self.obs_keys: list[str] = list(self.cfg.obs_keys or DEFAULT_OBS_KEYS)
        try:
            self._env = suite.make(
                str(self.cfg.task),
                robots=str(self.cfg.robot),
                controller_configs=_controller_config(str(self.cfg.robot), str(self.cfg.controller)),
                has_renderer=False,
                has_offscreen_renderer=render_mode == "rgb_array",
                use_camera_obs=False,
                use_object_obs=True,
                reward_shaping=bool(self.cfg.reward_shaping),
                control_freq=int(self.cfg.control_freq),
                horizon=int(self.cfg.horizon),
                ignore_done=True,  # the adapter owns truncation
                hard_reset=bool(self.cfg.hard_reset),
                seed=seed,
            )
        except Exception as e:
            hint = (f" (render_mode='rgb_array' needs an offscreen GL backend: MUJOCO_GL=egl or osmesa; "
                    f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r} here)" if render_mode else "")
            raise ConfigError(f"env.task={self.cfg.task!r}, env.robot={self.cfg.robot!r}: "
                              f"robosuite.make failed: {e}{hint}") from e
        if render_mode is not None:
            cameras = list(self._env.sim.model.camera_names)
            if self.render_camera not in cameras:
                self._env.close()
                raise ConfigError(f"render_camera={self.render_camera!r} is not a camera of '{self.cfg.task}' "
                                  f"(cameras: {cameras})")
        self.horizon = int(self.cfg.horizon)
        self._rng = np.random.default_rng(seed)
        apply_init_shift(self._env, self.shift)
        apply_dynamics_shift(self._env, self.shift)

        raw = self._env.reset()
        missing = [k for k in self.obs_keys if _ALIASES.get(k, k) not in raw]
        if missing:
            raise ConfigError(f"env.obs_keys: {missing} not observed by robosuite '{self.cfg.task}' "
                              f"(available: {sorted(raw)})")
        self.obs_slices: dict[str, slice] = {}
        i = 0
        for k in self.obs_keys:
            n = int(np.asarray(raw[_ALIASES.get(k, k)]).size)
            self.obs_slices[k] = slice(i, i + n)
            i += n
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(i,), dtype=np.float32)
        low, high = self._env.action_spec
        self.action_dim = int(len(low))
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(self.action_dim,), dtype=np.float32)
        self._t = 0
        self._last_raw = raw
        # robosuite's "object-state" is its active object-modality observables concatenated in `_observables`
        # order, which differs between robosuite versions: recorded so demo files can be checked against it.
        self._object_layout: list[tuple[str, int]] = [
            (str(name), int(np.asarray(raw[name]).size)) for name, o in self._env._observables.items()
            if o.modality == "object" and o.is_enabled() and o.is_active() and name in raw]

    # ----------------------------------------------------------------- helpers
    @property
    def unwrapped_robosuite(self) -> Any:
        return self._env

    def flatten(self, raw: dict[str, Any]) -> np.ndarray:
        return np.concatenate([np.asarray(raw[_ALIASES.get(k, k)], dtype=np.float32).ravel() for k in self.obs_keys])

    def raw_obs_dict(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The last raw observation under robomimic names (for writing demonstrations)."""
        keys = self.obs_keys if keys is None else keys
        return {k: np.asarray(self._last_raw[_ALIASES.get(k, k)]) for k in keys}

    def object_layout(self) -> list[tuple[str, int]]:
        """The (name, size) sub-observations concatenated, in order, into the "object" observation (robosuite's
        "object-state"), e.g. Can_to_robot0_eef_pos, Can_to_robot0_eef_quat, Can_pos, Can_quat in robosuite 1.5.
        Demo writers store it; `read_robomimic(..., object_layout=env.object_layout())` checks files against it."""
        return list(self._object_layout)

    def sim_state(self) -> np.ndarray:
        """Flattened MuJoCo state (robomimic's `states`)."""
        return np.asarray(self._env.sim.get_state().flatten())

    def reset_to_state(self, state: np.ndarray) -> np.ndarray:
        """Set the MuJoCo state to a flattened `state` (`sim_state()`'s output, robomimic's `states[t]`), run
        `forward()`, re-anchor the controllers there and return the observation. The model is not rebuilt: reset
        the env first (a hard reset builds it). The step counter is left as it is. From a demo's first state
        (where the robot's joints are its reset configuration) replaying the demo's actions reproduces it."""
        sim = self._env.sim
        state = np.asarray(state, dtype=np.float64).ravel()
        expected = int(np.asarray(sim.get_state().flatten()).size)
        if state.size != expected:
            raise ValueError(f"state has {state.size} values; this env's flattened MuJoCo state has {expected}")
        sim.set_state_from_flattened(state)
        sim.forward()
        # The controllers keep their own copy of the robot's pose (the OSC nullspace target, the arm's mass
        # matrix, the gripper's joint positions), which the first step acts on. Re-anchor them to this state as
        # a reset leaves them: robosuite loads them with the arm in place but the fingers still at the model's
        # qpos0 and opens the fingers after, so the first step's cache holds qpos0 fingers. With the fresh fingers
        # instead, the first step differs by ~1e-7 and a grasp contact amplifies that (Can demos ended 0.04-3.4
        # away); with this, scripted demos replay bit for bit.
        model = sim.model._model
        for robot in self._env.robots:
            fingers = [i for arm in robot.arms if robot.has_gripper[arm]
                       for i in robot._ref_gripper_joint_pos_indexes[arm]]
            opened = np.array(sim.data.qpos[fingers])
            sim.data.qpos[fingers] = model.qpos0[fingers]
            sim.forward()
            for controller in robot.part_controllers.values():
                controller.update_initial_joints(np.array(sim.data.qpos[controller.qpos_index]))
            sim.data.qpos[fingers] = opened
            sim.forward()
        # Observables sample on a clock: restart it as a reset does, or they sample at another substep.
        self._env._obs_cache = {}
        for observable in self._env._observables.values():
            observable.reset()
        raw = self._env._get_observations(force_update=True)
        self._last_raw = raw
        return self.flatten(raw)

    def env_args(self) -> dict[str, Any]:
        """robomimic's `env_args` attribute for datasets collected in this env: `robosuite.make(env_name,
        **env_kwargs)` rebuilds it (what robomimic's tools do), so the controller goes in as robosuite's own
        `controller_configs`, not as rlkit2's controller name."""
        return {
            "env_name": str(self.cfg.task),
            "type": 1,  # robomimic EnvType.ROBOSUITE_TYPE
            "env_kwargs": {
                "robots": [str(self.cfg.robot)],
                "controller_configs": _controller_config(str(self.cfg.robot), str(self.cfg.controller)),
                "ignore_done": True,
                "horizon": int(self.cfg.horizon),
                "control_freq": int(self.cfg.control_freq),
                "reward_shaping": bool(self.cfg.reward_shaping),
                "has_renderer": False,
                "has_offscreen_renderer": False,
                "use_camera_obs": False,
                "use_object_obs": True,
            },
        }

    def success(self) -> bool:
        return bool(self._env._check_success())

    # ----------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            # robosuite shares one Generator between its placement sampler and robot reset: reseed it in place.
            self._env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
            self._rng = np.random.default_rng(seed + 1_000_003)
        apply_init_shift(self._env, self.shift)
        raw = self._env.reset()
        apply_dynamics_shift(self._env, self.shift)  # a hard reset rebuilds the model
        self._last_raw = raw
        self._t = 0
        return self.flatten(raw), {"success": self.success()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(self.action_dim), -1.0, 1.0)
        executed = noisy_action(action, float(self.shift.action_noise), self._rng)
        raw, reward, _, _ = self._env.step(executed)
        self._last_raw = raw
        self._t += 1
        success = self.success()
        terminated = bool(success and self.cfg.terminate_on_success)
        truncated = (not terminated) and self._t >= self.horizon
        return self.flatten(raw), float(reward), terminated, truncated, {"success": success}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The current frame, (H, W, 3) uint8, when `render_mode="rgb_array"`; else None."""
        if self.render_mode != "rgb_array":
            return None
        h, w = self.render_size
        frame = self._env.sim.render(camera_name=self.render_camera, width=w, height=h)
        return np.ascontiguousarray(np.asarray(frame)[::-1])  # OpenGL's rows run bottom-up

    def close(self) -> None:
        self._env.close()
