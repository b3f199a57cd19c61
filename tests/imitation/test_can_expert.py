"""The scripted PickPlaceCan expert: solves seeded nominal episodes, collects a Can demo file read back with the
env's object layout, picked by task (a task without a scripted expert is refused, naming those with one)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rlkit2.core import ConfigError

pytest.importorskip("robosuite")

from rlkit2.envs.robosuite import RobosuiteEnvConfig, ShiftConfig, make_robosuite_env  # noqa: E402
from rlkit2.envs.robosuite.can_expert import (  # noqa: E402
    CAN_OBJECT_LAYOUT,
    TOP_DOWN,
    ScriptedCanExpert,
    _quat_error,
    _yawed,
)
from rlkit2.envs.robosuite.expert import (  # noqa: E402
    SCRIPTED_TASKS,
    check_scripted_task,
    make_scripted_expert,
)
from rlkit2.envs.robosuite.lift_expert import ScriptedLiftExpert  # noqa: E402

from rlkit2.core import evaluate  # noqa: E402


@pytest.fixture(scope="module")
def can():
    env = make_robosuite_env(RobosuiteEnvConfig(task="PickPlaceCan", horizon=400), seed=0)
    yield env
    env.close()


def test_quaternion_helpers():
    quarter = _yawed(TOP_DOWN, np.pi / 2)
    np.testing.assert_allclose(_quat_error(TOP_DOWN, quarter), [0, 0, np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(_quat_error(quarter, TOP_DOWN), [0, 0, -np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(_quat_error(quarter, -quarter), 0.0, atol=1e-9)  # q and -q: one orientation


def test_expert_reads_the_can_where_the_layout_puts_it():
    slices = {"object": slice(0, 14), "robot0_eef_pos": slice(14, 17)}
    assert ScriptedCanExpert(slices, [0.2, 0.4]).can_at == 7  # Can_pos after Can_to_robot0_eef_pos/quat
    swapped = [CAN_OBJECT_LAYOUT[2], CAN_OBJECT_LAYOUT[3], *CAN_OBJECT_LAYOUT[:2]]
    assert ScriptedCanExpert(slices, [0.2, 0.4], object_layout=swapped).can_at == 0
    with pytest.raises(KeyError, match="robot0_eef_pos"):
        ScriptedCanExpert({"object": slice(0, 14)}, [0.2, 0.4])
    with pytest.raises(KeyError, match="Can_pos"):
        ScriptedCanExpert(slices, [0.2, 0.4], object_layout=[("cube_pos", 3)])


def test_unknown_task_is_refused_naming_the_scripted_ones(tmp_path):
    from rlkit2.data.collect_demos import collect_demos

    assert SCRIPTED_TASKS == ("Lift", "PickPlaceCan")
    with pytest.raises(ConfigError, match=r"env.task='PickPlaceMilk'.*Lift, PickPlaceCan.*env.dataset"):
        collect_demos(RobosuiteEnvConfig(task="PickPlaceMilk"), tmp_path / "milk.hdf5", 1, progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before any env or file
    with pytest.raises(ConfigError, match="no scripted expert"):
        check_scripted_task("Stack")


def test_expert_is_picked_by_task(can):
    assert isinstance(make_scripted_expert(can), ScriptedCanExpert)
    lift = make_robosuite_env(RobosuiteEnvConfig(horizon=5), seed=0)
    try:
        assert isinstance(make_scripted_expert(lift), ScriptedLiftExpert)
    finally:
        lift.close()


def test_target_is_the_cans_quadrant_of_bin_2(can):
    rs = can.unwrapped_robosuite
    expert = ScriptedCanExpert.from_env(can)
    bin2, half = np.asarray(rs.bin2_pos)[:2], np.asarray(rs.bin_size)[:2] / 2
    # robosuite's success region for the can (object id 3): bin 2's (+x, +y) quadrant
    assert np.all(expert.target_xy > bin2) and np.all(expert.target_xy < bin2 + half)


def test_expert_solves_seeded_nominal_episodes(can):
    result = evaluate(can, ScriptedCanExpert.from_env(can), 3, seed=10)
    # ~110 steps each (experiments/imitation/results/can_expert.json); the preset's horizon is 400
    assert result["eval/success_rate"] == 1.0 and result["eval/length"] < 200


def test_collected_can_demos_read_back_with_the_object_layout(tmp_path, can):
    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.data.robomimic import read_robomimic, to_transitions

    cfg = RobosuiteEnvConfig(task="PickPlaceCan", horizon=400, shift=ShiftConfig(init=0.1))  # shift ignored
    stats = collect_demos(cfg, tmp_path / "can.hdf5", 2, seed=0, progress=False)
    assert stats.demos == 2 and stats.attempts == 2 and stats.mean_length < 200
    layout = can.object_layout()
    assert layout == [("Can_to_robot0_eef_pos", 3), ("Can_to_robot0_eef_quat", 4), ("Can_pos", 3), ("Can_quat", 4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = read_robomimic(tmp_path / "can.hdf5", object_layout=layout)
    assert ds.env_args["env_name"] == "PickPlaceCan" and ds.object_layout == layout and len(ds) == 2
    rs = can.unwrapped_robosuite
    bin1, bin2, half = (np.asarray(rs.bin1_pos)[:2], np.asarray(rs.bin2_pos)[:2], np.asarray(rs.bin_size)[:2] / 2)
    for demo in ds.demos:
        can_pos = demo.obs["object"][:, 7:10]  # Can_pos's columns
        assert np.all(np.abs(can_pos[0, :2] - bin1) < half)  # starts in bin 1 ...
        assert np.all(demo.next_obs["object"][-1, 7:9] > bin2)  # ... ends in its quadrant of bin 2
        assert demo.dones[-1] == 1 and demo.states.shape[0] == len(demo)
    arrays = to_transitions(ds, cfg.obs_keys)
    assert arrays["observations"].shape[1] == 23 and arrays["terminals"][-1] == 1.0


def test_hydra_can_preset():
    from hydra import compose, initialize_config_module

    import rlkit2.config  # noqa: F401 - registers base_config

    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("base_config", overrides=["+env=robosuite/can", "+agent={}"])
    assert cfg.env.task == "PickPlaceCan" and cfg.env.horizon == 400


@pytest.mark.slow
def test_expert_under_shift():
    env = make_robosuite_env(RobosuiteEnvConfig(task="PickPlaceCan", horizon=400,
                                                shift=ShiftConfig(init=0.1, action_noise=0.1)), seed=0)
    try:
        result = evaluate(env, ScriptedCanExpert.from_env(env), 10, seed=500)
    finally:
        env.close()
    assert result["eval/success_rate"] >= 0.9, result


@pytest.mark.slow
def test_imitation_run_on_can_collects_scripted_demos(tmp_path):
    """`rlkit2-train agent=bc env=robosuite/can` with no dataset: the runner's demos come from the Can expert."""
    from hydra import compose, initialize_config_module

    from rlkit2.data.robomimic import read_robomimic
    from rlkit2.logging import JsonlLogger
    from rlkit2.run.imitation import run_imitation
    from rlkit2.train import register_schemas

    register_schemas()
    over = ["agent=bc", "env=robosuite/can", "env.num_demos=2", "trainer.total_steps=10", "trainer.eval_every=10",
            "trainer.eval_episodes=1", "trainer.log_every=10", "trainer.checkpoint_every=10",
            "trainer.progress=false", "agent.hidden=[16]", "agent.batch_size=32"]
    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("config", overrides=over)
    final = run_imitation(cfg, tmp_path, JsonlLogger(tmp_path))
    assert "eval/success_rate" in final
    ds = read_robomimic(tmp_path / "demos.hdf5")
    assert ds.env_args["env_name"] == "PickPlaceCan" and len(ds) == 2
