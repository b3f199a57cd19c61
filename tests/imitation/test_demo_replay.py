"""A robomimic demo reproduces from its recorded `states`: reset to the first, replay the actions, compare."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from rlkit2.core import DataError
from rlkit2.data.demo_replay import replay_demo
from rlkit2.data.robomimic import read_robomimic
from rlkit2.data.robomimic_writer import write_robomimic

pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def lift(tmp_path_factory):
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, make_robosuite_env

    from rlkit2.data.collect_demos import collect_demos

    path = tmp_path_factory.mktemp("demos") / "lift.hdf5"
    cfg = RobosuiteEnvConfig(horizon=40)
    collect_demos(cfg, path, 1, seed=0, progress=False)
    # The model as the collector built it: robosuite samples Lift's cube size from the env seed when it builds
    # the model (hard_reset=False: once), and a flattened state does not carry the model.
    env = make_robosuite_env(cfg, seed=0)
    yield path, env
    env.close()


def test_demo_reproduces_from_its_states(lift):
    path, env = lift
    demo = read_robomimic(path).demos[0]
    rep = replay_demo(env, demo, tolerance=1e-12)
    # bit for bit: reset_to_state leaves the controllers' cache as a reset does (with it fresh instead: ~2e-7)
    assert rep.steps == len(demo) and rep.first_bad_step is None and rep.reproduces(1e-12), rep


def test_can_demo_reproduces_through_its_grasp():
    """A grasp contact amplifies any difference at the first step: this demo (collection seed 7) ended 0.04 away,
    departing at step 33, while reset_to_state refreshed the controllers' cache that a reset leaves stale."""
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, make_robosuite_env

    from rlkit2.data.collect_demos import collect_demos

    cfg = RobosuiteEnvConfig(task="PickPlaceCan", horizon=250)
    with tempfile.TemporaryDirectory() as tmp:
        collect_demos(cfg, Path(tmp) / "can.hdf5", 1, seed=7, progress=False)
        demo = read_robomimic(Path(tmp) / "can.hdf5").demos[0]
    env = make_robosuite_env(cfg, seed=7)
    try:
        rep = replay_demo(env, demo, tolerance=1e-12)
    finally:
        env.close()
    assert rep.steps == len(demo) > 50 and rep.first_bad_step is None and rep.reproduces(1e-12), rep


def test_altered_actions_do_not_reproduce(lift, tmp_path):
    path, env = lift
    demo = read_robomimic(path).demos[0]
    demo.actions = demo.actions.copy()
    demo.actions[3:, :3] *= -1  # the arm moves the other way from step 3
    altered = write_robomimic(tmp_path / "altered.hdf5", [demo])
    rep = replay_demo(env, read_robomimic(altered).demos[0], tolerance=1e-5)
    assert not rep.reproduces(1e-5) and rep.max_state_error > 1e-2 and rep.first_bad_step == 4, rep


def test_another_model_does_not_reproduce(lift):
    """An env built with another seed has another cube size: the recorded states do not carry the model."""
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, make_robosuite_env

    path, _ = lift
    env = make_robosuite_env(RobosuiteEnvConfig(horizon=40), seed=123)
    try:
        rep = replay_demo(env, read_robomimic(path).demos[0], tolerance=1e-5)
    finally:
        env.close()
    assert not rep.reproduces(1e-5) and rep.first_bad_step == 1, rep


def test_demo_without_states_is_refused(lift):
    path, env = lift
    demo = read_robomimic(path).demos[0]
    demo.states = None
    with pytest.raises(DataError, match="no recorded states"):
        replay_demo(env, demo)
    with pytest.raises(ValueError, match="flattened MuJoCo state"):
        env.reset_to_state(np.zeros(3))
