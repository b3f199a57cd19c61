"""Typed configs of the robosuite environment kind and of its deployment shifts.

Kept free of any robosuite import so Hydra can compose `env=robosuite/lift` (and the
rest of rlkit2 can import) on a machine without robosuite.
"""

from __future__ import annotations

import dataclasses

# robomimic's low-dim observation keys for Lift / PickPlaceCan; "object" is robosuite's "object-state".
DEFAULT_OBS_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
# robosuite's OSC_POSE output_max: what an action of 1.0 moves per control step (the scripted experts scale by it)
OSC_MAX_DELTA = 0.05  # position, m
OSC_MAX_ROT = 0.5  # orientation, rad


@dataclasses.dataclass
class ShiftConfig:
    """How the deployment env differs from the nominal (demonstration) env. All zero = nominal.

    Strengths (reconstruction; the paper's exact shifts are not public):
    - `init`: object placement range widened by `init * object_init_scale` metres on every side (nominal
      Lift: +-0.03 m), displaced by `init_offset` (x, y), and the robot's start joints perturbed by Gaussian
      noise of std 0.02 + `init * robot_init_scale` rad (nominal 0.02). The two scales separate the axes:
      `object_init_scale=0` shifts only the robot's start, `robot_init_scale=0` only the object's.
      In bin tasks (PickPlaceCan) the widened range is clipped to bin 1's interior (objects keep their radius
      inside the walls), so the can's placement saturates at the bin from `init * object_init_scale` ~ 0.04 m
      on; bin 2's visual target markers are never moved. Table tasks (Lift) are widened without a bound.
    - `action_noise`: std of Gaussian noise added to every (normalised) action before clipping.
    - `friction`: object friction scaled by max(1 - friction, 0.05) (slippery objects).
    - `mass`: object mass scaled by 1 + mass.
    """

    init: float = 0.0
    init_offset: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0])
    robot_init_scale: float = 1.0
    object_init_scale: float = 1.0
    action_noise: float = 0.0
    friction: float = 0.0
    mass: float = 0.0


@dataclasses.dataclass
class RobosuiteEnvConfig:
    kind: str = "robosuite"
    id: str = "robosuite-lift"  # a name for run dirs and plots
    task: str = "Lift"  # robosuite env name: Lift, PickPlaceCan, ...
    robot: str = "Panda"
    controller: str = "OSC_POSE"  # the arm's part controller (robosuite's BASIC composite config)
    horizon: int = 200  # max control steps; reaching it is a truncation
    control_freq: int = 20
    reward_shaping: bool = False
    obs_keys: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_OBS_KEYS))
    terminate_on_success: bool = True  # robomimic demos end at success; so do episodes
    hard_reset: bool = False  # False: ~100x cheaper resets (same model reused)
    shift: ShiftConfig = dataclasses.field(default_factory=ShiftConfig)
    # Demonstrations (imitation agents): a robomimic HDF5 file; "" collects `num_demos` scripted-expert
    # demos (the tasks with one: Lift, PickPlaceCan, envs/robosuite/expert.py) in the nominal env into the run dir.
    # `max_demos` caps how many are loaded (0: all).
    dataset: str = ""
    num_demos: int = 50
    max_demos: int = 0
    filter_key: str = ""  # robomimic mask, e.g. "train"
    # robomimic mask of held-out demos, e.g. "valid": never trained on (left out when filter_key is empty, refused
    # when filter_key's demos include them); each evaluation logs valid/action_mse, the policy's open-loop action
    # error on them (rlkit2.demo_fit)
    valid_filter_key: str = ""
    eval_nominal: bool = True  # imitation runner: when shifted, also evaluate in the nominal env


# read by the imitation runner only (demonstrations and its nominal-env evaluation)
IMITATION_SETTINGS = ("dataset", "num_demos", "max_demos", "filter_key", "valid_filter_key", "eval_nominal")


def refuse_imitation_settings(cfg: object, agent: str, *, offline: bool) -> None:
    """An agent of another family on a robosuite env reads none of the imitation runner's settings (an offline
    agent reads `dataset`, as a D4RL-format file): one set away from its default is refused, not ignored."""
    from rlkit2.core import ConfigError

    node, default = as_config(cfg), RobosuiteEnvConfig()
    unread = [k for k in IMITATION_SETTINGS if not (offline and k == "dataset")]
    changed = [f"env.{k}={getattr(node, k)}" for k in unread if getattr(node, k) != getattr(default, k)]
    if changed:
        learns = "from env.dataset's transitions" if offline else "from the env itself"
        raise ConfigError(f"{', '.join(changed)}: read by the imitation agents (bc, bc_rnn, poir) only; agent "
                          f"'{agent}' learns {learns}. Leave them at their defaults")


def as_config(cfg: object | None) -> RobosuiteEnvConfig:
    """A `RobosuiteEnvConfig` from a dataclass, a dict or an OmegaConf node (unknown keys are refused)."""
    from rlkit2.core import ConfigError

    if cfg is None:
        return RobosuiteEnvConfig()
    if isinstance(cfg, RobosuiteEnvConfig):
        return cfg
    if not isinstance(cfg, dict):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[arg-type]
    node = dict(cfg)  # type: ignore[arg-type]
    shift = dict(node.pop("shift", {}) or {})
    for name, cls, values in (("env", RobosuiteEnvConfig, node), ("env.shift", ShiftConfig, shift)):
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"{name} has no option(s) {unknown}")
    return RobosuiteEnvConfig(**node, shift=ShiftConfig(**shift))
