"""robomimic HDF5 reader/writer: round trip, masks, clear errors, atomic writes, collected demos."""

from __future__ import annotations

import json
import warnings

import h5py
import numpy as np
import pytest

from rlkit2.core import DataError
from rlkit2.data.robomimic import Demo, read_robomimic, to_transitions
from rlkit2.data.robomimic_writer import RobomimicWriter, write_robomimic
from rlkit2.replay import TransitionReplay

KEYS = ["object", "robot0_eef_pos"]


def _demo(T: int, seed: int) -> Demo:
    r = np.random.default_rng(seed)
    obs = {"object": r.normal(size=(T + 1, 10)), "robot0_eef_pos": r.normal(size=(T + 1, 3))}
    dones = np.zeros(T, np.int64)
    dones[-1] = 1
    return Demo({k: v[:-1] for k, v in obs.items()}, r.uniform(-1, 1, (T, 7)), dones.astype(np.float64), dones,
                {k: v[1:] for k, v in obs.items()}, r.normal(size=(T, 32)))


@pytest.fixture
def small_file(tmp_path):
    demos = [_demo(5, 0), _demo(7, 1), _demo(4, 2)]
    path = write_robomimic(tmp_path / "d.hdf5", demos, {"env_name": "Lift", "type": 1, "env_kwargs": {}},
                           masks={"train": ["demo_0", "demo_1"], "valid": ["demo_2"]})
    return path, demos


def test_round_trip(small_file):
    path, demos = small_file
    ds = read_robomimic(path)
    assert ds.env_args["env_name"] == "Lift" and len(ds) == 3 and ds.num_transitions == 16
    for a, b in zip(demos, ds.demos, strict=True):
        np.testing.assert_allclose(a.actions, b.actions, rtol=1e-6)
        np.testing.assert_array_equal(a.states, b.states)
        for k in KEYS:
            np.testing.assert_array_equal(a.obs[k], b.obs[k])
            np.testing.assert_array_equal(a.next_obs[k], b.next_obs[k])
    with h5py.File(path) as f:  # robomimic's own bookkeeping
        assert f["data"].attrs["total"] == 16 and f["data/demo_1"].attrs["num_samples"] == 7


def test_filter_key_and_transitions(small_file):
    path, demos = small_file
    ds = read_robomimic(path, obs_keys=KEYS, filter_key="train")
    assert [d.name for d in ds.demos] == ["demo_0", "demo_1"]
    arrays = to_transitions(ds, KEYS)
    assert arrays["observations"].shape == (12, 13) and arrays["terminals"].sum() == 2
    # s' of step t is s of step t+1 within a demo.
    np.testing.assert_allclose(arrays["next_observations"][:4], arrays["observations"][1:5], rtol=1e-6)
    replay = TransitionReplay.from_arrays(arrays)
    assert len(replay) == 12 and replay.sample(4).observations.shape == (4, 13)


def test_held_out_demos_are_never_trained_on(small_file, tmp_path):
    """`exclude_key` (env.valid_filter_key): the held-out demos leave the training set before any cap; a training
    mask that lists one of them is refused; a missing held-out mask is named."""
    path, _ = small_file
    assert [d.name for d in read_robomimic(path, exclude_key="valid").demos] == ["demo_0", "demo_1"]
    assert [d.name for d in read_robomimic(path, exclude_key="valid", max_demos=1).demos] == ["demo_0"]
    assert [d.name for d in read_robomimic(path, filter_key="train", exclude_key="valid").demos] == ["demo_0",
                                                                                                     "demo_1"]
    leaky = write_robomimic(tmp_path / "leaky.hdf5", [_demo(3, 0), _demo(3, 1)],
                            masks={"train": ["demo_0", "demo_1"], "valid": ["demo_1"]})
    with pytest.raises(DataError, match=r"mask/train and mask/valid share demos \['demo_1'\]"):
        read_robomimic(leaky, filter_key="train", exclude_key="valid")
    with pytest.raises(DataError, match="mask 'holdout' .* not in mask/"):
        read_robomimic(path, exclude_key="holdout")
    empty = write_robomimic(tmp_path / "empty.hdf5", [_demo(3, 0)], masks={"valid": []})
    with pytest.raises(DataError, match="mask/valid lists no demos"):
        read_robomimic(empty, filter_key="valid")
    only = write_robomimic(tmp_path / "only.hdf5", [_demo(3, 0)], masks={"valid": ["demo_0"]})
    with pytest.raises(DataError, match="no demonstrations under data/ outside mask/valid"):
        read_robomimic(only, exclude_key="valid")


def test_missing_demo_is_refused(tmp_path):
    path = write_robomimic(tmp_path / "d.hdf5", [_demo(3, 0)], masks={"train": ["demo_0", "demo_7"]})
    with pytest.raises(DataError, match=r"demo 'demo_7'.*missing"):
        read_robomimic(path, filter_key="train")
    with pytest.raises(DataError, match="filter_key 'nope'"):
        read_robomimic(path, filter_key="nope")


def test_missing_keys_are_refused(tmp_path, small_file):
    path, _ = small_file
    with pytest.raises(DataError, match=r"demo_0/obs' has no 'cube_pos'"):
        read_robomimic(path, obs_keys=["cube_pos"])
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
    with pytest.raises(DataError, match=r"d.hdf5: demo 'demo_1' has no 'actions'"):
        read_robomimic(path)
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_group("observations")
    with pytest.raises(DataError, match="no 'data' group"):
        read_robomimic(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_robomimic(tmp_path / "absent.hdf5")


def test_length_mismatch_is_refused(tmp_path):
    d = _demo(5, 0)
    d.rewards = d.rewards[:3]
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        g = f.create_group("data/demo_0")
        g["actions"], g["rewards"], g["dones"] = d.actions, d.rewards, d.dones
        for k, v in d.obs.items():
            g[f"obs/{k}"] = v
    with pytest.raises(DataError, match="field 'rewards' has 3 rows but actions has 5"):
        read_robomimic(tmp_path / "x.hdf5")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.hdf5"
    with pytest.raises(RuntimeError):
        with RobomimicWriter(target) as w:
            w.add(_demo(3, 0))
            raise RuntimeError("killed mid-collection")
    assert list(tmp_path.iterdir()) == []


def test_collected_demos_match_the_env_layout(tmp_path):
    pytest.importorskip("robosuite")
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, ShiftConfig

    from rlkit2.data.collect_demos import collect_demos

    cfg = RobosuiteEnvConfig(horizon=80, shift=ShiftConfig(init=0.2))  # the shift must be ignored
    stats = collect_demos(cfg, tmp_path / "lift.hdf5", 2, seed=0, progress=False)
    assert stats.demos == 2 and stats.success_rate > 0
    ds = read_robomimic(tmp_path / "lift.hdf5")
    assert ds.env_args["env_name"] == "Lift" and set(ds.masks) == {"train", "valid"}
    arrays = to_transitions(ds, cfg.obs_keys)
    assert arrays["observations"].shape[1] == 19 and arrays["terminals"][-1] == 1.0
    cube_xy = np.stack([d.obs["object"][0, :2] for d in ds.demos])
    assert np.abs(cube_xy).max() <= 0.031  # nominal placement despite cfg.shift
    # the file records the env's obs/object layout and loads against it without a warning
    from rlkit2.envs.robosuite import make_robosuite_env

    env = make_robosuite_env(RobosuiteEnvConfig(horizon=5), seed=0)
    try:
        layout = env.object_layout()
    finally:
        env.close()
    assert layout == [("cube_pos", 3), ("cube_quat", 4), ("gripper_to_cube_pos", 3)] and ds.object_layout == layout
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_robomimic(tmp_path / "lift.hdf5", object_layout=layout)) == 2


# robosuite 1.5's PickPlaceCan object-state, and the order older robosuite (robomimic's Can files) used
CAN_15 = [("Can_to_robot0_eef_pos", 3), ("Can_to_robot0_eef_quat", 4), ("Can_pos", 3), ("Can_quat", 4)]
CAN_OLD = [("Can_pos", 3), ("Can_quat", 4), ("Can_to_robot0_eef_pos", 3), ("Can_to_robot0_eef_quat", 4)]


def _can_demo(T: int = 4) -> Demo:
    d = _demo(T, 0)
    r = np.random.default_rng(1)
    d.obs["object"], d.next_obs["object"] = r.normal(size=(T, 14)), r.normal(size=(T, 14))
    return d


def test_permuted_object_layout_is_refused(tmp_path):
    """A Can file whose object-state order differs from the env's used to load with columns swapped (only the
    width, 14 both ways, was checked)."""
    path = write_robomimic(tmp_path / "old_can.hdf5", [_can_demo()], {"env_name": "PickPlaceCan"},
                           object_layout=CAN_OLD)
    with pytest.raises(DataError) as e:
        read_robomimic(path, object_layout=CAN_15)
    msg = str(e.value)
    assert str(path) in msg and "differs from the env's" in msg
    assert "[Can_pos(3), Can_quat(4), Can_to_robot0_eef_pos(3), Can_to_robot0_eef_quat(4)]" in msg  # the file's
    assert "[Can_to_robot0_eef_pos(3), Can_to_robot0_eef_quat(4), Can_pos(3), Can_quat(4)]" in msg  # the env's
    assert "collect_demos" in msg and "reorder" in msg
    ds = read_robomimic(path, object_layout=CAN_OLD)  # the same layout loads; so does an unchecked read
    assert ds.object_layout == CAN_OLD and read_robomimic(path).object_layout == CAN_OLD


def test_writer_layout_loads_and_width_is_checked(tmp_path):
    path = write_robomimic(tmp_path / "can.hdf5", [_can_demo(), _can_demo(3)], object_layout=CAN_15)
    with h5py.File(path) as f:
        assert json.loads(f["data"].attrs["object_obs_layout"]) == [list(p) for p in CAN_15]
    assert len(read_robomimic(path, object_layout=[list(p) for p in CAN_15])) == 2  # JSON-style pairs work too
    bad = write_robomimic(tmp_path / "bad.hdf5", [_can_demo()], object_layout=CAN_15[:3])  # 10 != 14 columns
    with pytest.raises(DataError, match="obs/object has 14 columns but the file's layout"):
        read_robomimic(bad)
    with pytest.raises(DataError, match="pairs"):
        write_robomimic(tmp_path / "x.hdf5", [_can_demo()], object_layout=[("Can_pos", -3)])


def test_file_without_layout_warns_once(tmp_path):
    path = write_robomimic(tmp_path / "robomimic_can.hdf5", [_can_demo()],
                           {"env_name": "PickPlaceCan", "env_version": "1.2.1"})
    with pytest.warns(UserWarning, match=r"robosuite 1\.2\.1.*could not be checked") as rec:
        read_robomimic(path, object_layout=CAN_15)
        read_robomimic(path, object_layout=CAN_15)
    assert len([w for w in rec if "could not be checked" in str(w.message)]) == 1
    assert str(path) in str(rec[0].message)


def test_the_imitation_runner_checks_the_layout_of_the_demos_it_loads(tmp_path):
    """`load_demos` (what the imitation phase calls, with the eval env's `object_layout()`) refuses swapped columns."""
    from types import SimpleNamespace

    from rlkit2.run.imitation import load_demos

    path = write_robomimic(tmp_path / "old_can.hdf5", [_can_demo()], {"env_name": "PickPlaceCan"},
                           object_layout=CAN_OLD)
    env_cfg = SimpleNamespace(dataset=str(path), num_demos=0, filter_key="", max_demos=0)
    keys = list(_can_demo().obs)
    with pytest.raises(DataError, match="differs from the env's"):
        load_demos(env_cfg, tmp_path, keys, seed=0, progress=False, object_layout=CAN_15)
    demos = load_demos(env_cfg, tmp_path, keys, seed=0, progress=False, object_layout=CAN_OLD)
    assert demos.path == str(path) and demos.count == 1 and len(demos.transitions["observations"]) == 4
    assert demos.valid == []


def test_demo_action_error_scores_an_actor_and_refuses_another_width():
    """rlkit2.demo_fit: a policy that returns the demonstrated action has zero error, one off by 0.5 in one dim
    0.25 there; actions of another width than the demos' are refused, naming the widths."""
    from rlkit2.core import FunctionActor
    from rlkit2.demo_fit import demo_action_error

    demo = _demo(6, 3)
    lookup = {tuple(np.concatenate([demo.obs[k][t] for k in KEYS]).astype(np.float32)): demo.actions[t]
              for t in range(6)}
    exact = demo_action_error(FunctionActor(lambda o: lookup[tuple(o)]), [demo], KEYS)
    assert exact["mse"] == pytest.approx(0.0, abs=1e-12) and exact["transitions"] == 6
    off = demo_action_error(FunctionActor(lambda o: lookup[tuple(o)] + np.eye(7)[2] * 0.5), [demo], KEYS)
    assert off["mse_per_dim"][2] == pytest.approx(0.25) and off["mse"] == pytest.approx(0.25 / 7)
    with pytest.raises(ValueError, match=r"actions are \(3,\) wide, the demo's \(7,\)"):
        demo_action_error(FunctionActor(lambda o: np.zeros(3)), [demo], KEYS)
