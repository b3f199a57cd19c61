"""robosuite adapter: Gymnasium env checker, seeding, shifts, Hydra composition, scripted expert."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("robosuite")

from gymnasium.utils.env_checker import check_env  # noqa: E402
from rlkit2.envs.robosuite import RobosuiteEnvConfig, ShiftConfig, make_robosuite_env  # noqa: E402
from rlkit2.envs.robosuite.lift_expert import ScriptedLiftExpert  # noqa: E402

from rlkit2.core import ConfigError, evaluate  # noqa: E402


@pytest.fixture(scope="module")
def lift():
    env = make_robosuite_env(RobosuiteEnvConfig(horizon=60), seed=0)
    yield env
    env.close()


def _cube_xy(env, seed: int) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    return obs[env.obs_slices["object"]][:2].copy()


def test_env_checker_passes(lift):
    check_env(lift, skip_render_check=True)
    obs, info = lift.reset(seed=1)
    assert obs.dtype == np.float32 and lift.observation_space.contains(obs)
    assert "success" in info and lift.action_space.shape == (7,)


def test_same_seed_same_episode(lift):
    actions = np.random.default_rng(0).uniform(-1, 1, (10, 7)).astype(np.float32)

    def rollout():
        obs = [lift.reset(seed=5)[0]]
        obs += [lift.step(a)[0] for a in actions]
        return np.stack(obs)

    np.testing.assert_array_equal(rollout(), rollout())


def test_truncates_at_horizon():
    env = make_robosuite_env(RobosuiteEnvConfig(horizon=5), seed=0)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7, np.float32))[2:4] for _ in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_init_shift_widens_object_placement(lift):
    nominal = np.stack([_cube_xy(lift, s) for s in range(30)])
    shifted_env = make_robosuite_env(RobosuiteEnvConfig(horizon=60, shift=ShiftConfig(init=0.1)), seed=0)
    shifted = np.stack([_cube_xy(shifted_env, s) for s in range(30)])
    # Nominal Lift places the cube within +-3 cm of the table centre; a 0.1 shift widens that to +-13 cm.
    assert np.abs(nominal).max() <= 0.031
    assert np.abs(shifted).max() > 0.06
    assert shifted.std(0).min() > 2 * nominal.std(0).max()


def _eef(env, seed: int) -> np.ndarray:
    obs, _ = env.reset(seed=seed)
    return obs[env.obs_slices["robot0_eef_pos"]].copy()


def test_init_shift_axes_separate_robot_and_object(lift):
    def env(**kw):
        return make_robosuite_env(RobosuiteEnvConfig(horizon=60, shift=ShiftConfig(init=0.1, **kw)), seed=0)

    robot_only, object_only = env(object_init_scale=0.0), env(robot_init_scale=0.0)
    cube = {k: np.stack([_cube_xy(e, s) for s in range(20)]) for k, e in (("robot", robot_only),
                                                                          ("object", object_only))}
    eef = {k: np.stack([_eef(e, s) for s in range(20)]) for k, e in (("nominal", lift), ("robot", robot_only),
                                                                     ("object", object_only))}
    assert np.abs(cube["robot"]).max() <= 0.031 and np.abs(cube["object"]).max() > 0.06
    assert eef["robot"].std(0).max() > 3 * eef["nominal"].std(0).max()
    assert eef["object"].std(0).max() < 2 * eef["nominal"].std(0).max()


def test_action_noise_changes_the_dynamics(lift):
    noisy = make_robosuite_env(RobosuiteEnvConfig(horizon=60, shift=ShiftConfig(action_noise=0.2)), seed=0)
    a = np.array([0.5, 0, 0, 0, 0, 0, -1], np.float32)

    def final_eef(env):
        env.reset(seed=3)
        for _ in range(10):
            obs = env.step(a)[0]
        return obs[env.obs_slices["robot0_eef_pos"]]

    gap = np.linalg.norm(final_eef(lift) - final_eef(noisy))
    assert gap > 0.005  # metres: the executed actions are not the commanded ones


def test_friction_and_mass_shift_change_the_model(lift):
    shifted = make_robosuite_env(RobosuiteEnvConfig(shift=ShiftConfig(friction=0.5, mass=1.0)), seed=0)
    m0, m1 = lift.unwrapped_robosuite.sim.model, shifted.unwrapped_robosuite.sim.model
    cube = lift.unwrapped_robosuite.cube
    b = m0.body_name2id(cube.root_body)
    g = m0.geom_name2id(cube.contact_geoms[0])
    assert m1.body_mass[b] == pytest.approx(2 * m0.body_mass[b])
    assert m1.geom_friction[g][0] == pytest.approx(0.5 * m0.geom_friction[g][0])
    shifted.reset(seed=0)  # survives resets
    assert m1.body_mass[b] == pytest.approx(2 * m0.body_mass[b])


def test_unknown_obs_key_is_refused():
    with pytest.raises(ConfigError, match="obs_keys.*nope"):
        make_robosuite_env(RobosuiteEnvConfig(obs_keys=["nope"]), seed=0)


@pytest.mark.parametrize("setting", ["env.dataset=/data/lift.hdf5", "env.valid_filter_key=valid",
                                     "env.num_demos=10", "env.eval_nominal=false"])
def test_an_online_agent_refuses_the_imitation_runners_settings(tmp_path, setting):
    """SAC on a robosuite env reads no demos: a demo setting given to it is refused, naming it, before any env
    is built (it used to be ignored); TD3+BC reads env.dataset as its transitions, and refuses the rest."""
    from hydra import compose, initialize_config_module

    from rlkit2.run.control import ControlSetup
    from rlkit2.train import register_schemas

    register_schemas()
    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("config", overrides=["agent=sac", "env=robosuite/lift", setting])
    key, value = setting.split("=")
    with pytest.raises(ConfigError, match=rf"(?i){key}={value}: read by the imitation agents"):
        ControlSetup(cfg)
    if key != "env.dataset":  # an offline agent reads env.dataset (D4RL-format rows), none of the others
        with initialize_config_module("rlkit2.conf", version_base=None):
            offline = compose("config", overrides=["agent=td3_bc", "env=robosuite/lift", setting])
        with pytest.raises(ConfigError, match=rf"(?i){key}={value}: .*agent 'td3_bc' learns from env.dataset"):
            ControlSetup(offline)


def test_hydra_composes_shifted_lift():
    from hydra import compose, initialize_config_module

    import rlkit2.config  # noqa: F401 - registers base_config

    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("base_config", overrides=["+env=robosuite/lift", "env.shift.init=0.1",
                                                "env.shift.action_noise=0.05", "+agent={}"])
    assert cfg.env.kind == "robosuite" and cfg.env.task == "Lift"
    assert cfg.env.shift.init == 0.1 and cfg.env.shift.action_noise == 0.05
    from rlkit2.registry import make_env

    env = make_env(cfg.env, seed=0)
    assert env.shift.init == 0.1


def test_scripted_expert_solves_nominal_lift_quickly(lift):
    result = evaluate(lift, ScriptedLiftExpert(lift.obs_slices), 3, seed=10)
    assert result["eval/success_rate"] == 1.0 and result["eval/length"] < 50


@pytest.mark.slow
def test_scripted_expert_success_rate_nominal_and_shifted():
    for shift, floor in [(ShiftConfig(), 1.0), (ShiftConfig(init=0.1, action_noise=0.1), 0.9)]:
        env = make_robosuite_env(RobosuiteEnvConfig(horizon=150, shift=shift), seed=0)
        result = evaluate(env, ScriptedLiftExpert(env.obs_slices), 20, seed=1000)
        assert result["eval/success_rate"] >= floor, (shift, result)


@pytest.mark.slow
def test_pick_place_can_adapter():
    env = make_robosuite_env(RobosuiteEnvConfig(task="PickPlaceCan", horizon=20), seed=0)
    check_env(env, skip_render_check=True)
    assert env.obs_slices["object"].stop - env.obs_slices["object"].start == 14


def test_env_args_rebuild_the_env_with_robosuite_make(lift):
    """robomimic's tools call robosuite.make(env_name, **env_kwargs) on a file's env_args; before, env_kwargs
    held rlkit2's "controller": "OSC_POSE" and that call failed."""
    import json

    import robosuite

    args = json.loads(json.dumps(lift.unwrapped.env_args()))  # what a demo file stores
    env = robosuite.make(args["env_name"], **args["env_kwargs"])
    try:
        assert env.action_dim == lift.action_space.shape[0]
    finally:
        env.close()


def test_robot_start_shift_survives_hard_resets():
    """robosuite rebuilds the robot on a hard reset; the shifted start noise must be rebuilt with it (before:
    joint std 0.021 instead of 0.12 at s = 0.1)."""
    def eef_std(hard: bool) -> float:
        cfg = RobosuiteEnvConfig(horizon=20, hard_reset=hard, shift=ShiftConfig(init=0.1, object_init_scale=0.0))
        env = make_robosuite_env(cfg, seed=0)
        try:
            return float(np.stack([_eef(env, s) for s in range(8)]).std(0).max())
        finally:
            env.close()

    soft, hard = eef_std(False), eef_std(True)
    assert hard > 0.5 * soft, (soft, hard)
