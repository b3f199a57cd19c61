"""D4RL HDF5 reader/writer: round trip, validation errors, episode boundaries."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from rlkit2.core import ConfigError, DataError
from rlkit2.data import read_d4rl, resolve_env_id, to_transitions, write_d4rl
from rlkit2.data.d4rl import episode_returns
from rlkit2.data.names import (
    dataset_candidates,
    parse_d4rl_name,
    parse_dataset_name,
    parse_generated_name,
    resolve_dataset_path,
)
from tests.data.helpers_data import episodes_rows


def _raw_h5(path, arrays, groups=None):
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
        for g, content in (groups or {}).items():
            grp = f.create_group(g)
            for k, v in content.items():
                grp.create_dataset(k, data=v)


# --------------------------------------------------------------------------- round trip


def test_write_then_read_is_identical(tmp_path):
    rows = episodes_rows([5, 4, 3], ["terminal", "timeout", "cut"])
    infos = {"qpos": np.arange(12 * 4, dtype=np.float64).reshape(12, 4), "action_log_probs": np.linspace(0, 1, 12)}
    metadata = {"env_id": "Hopper-v5", "seed": 3, "policy_return": 1234.5, "is_expert": True,
                "ref": {"random": -20.0, "expert": 3000.0}, "checkpoint_steps": np.array([1, 2, 3])}
    path = write_d4rl(tmp_path / "d.hdf5", rows, infos=infos, metadata=metadata)
    data = read_d4rl(path)
    assert sorted(data.arrays) == sorted(rows)
    for k, v in rows.items():
        np.testing.assert_array_equal(data.arrays[k], v)
        assert data.arrays[k].dtype == v.dtype
    for k, v in infos.items():
        np.testing.assert_array_equal(data.infos[k], v)
    assert data.metadata["env_id"] == "Hopper-v5"
    assert data.metadata["seed"] == 3 and isinstance(data.metadata["seed"], int)
    assert data.metadata["policy_return"] == 1234.5
    assert data.metadata["is_expert"] is True
    assert data.metadata["ref/random"] == -20.0 and data.metadata["ref/expert"] == 3000.0
    np.testing.assert_array_equal(data.metadata["checkpoint_steps"], [1, 2, 3])
    # writing what was read gives the same file content again
    again = read_d4rl(write_d4rl(tmp_path / "e.hdf5", data.arrays, infos=data.infos, metadata=data.metadata))
    for k in rows:
        np.testing.assert_array_equal(again.arrays[k], data.arrays[k])
    assert again.metadata.keys() == data.metadata.keys()


def test_writer_is_atomic_and_leaves_nothing_on_failure(tmp_path):
    good = episodes_rows([4], ["timeout"])
    path = tmp_path / "d.hdf5"
    write_d4rl(path, good)
    before = path.read_bytes()
    bad = dict(good, rewards=np.array([1.0, np.nan, 0, 0], np.float32))
    with pytest.raises(DataError, match="rewards"):
        write_d4rl(path, bad)
    with pytest.raises(DataError, match="infos/qpos"):
        write_d4rl(path, good, infos={"qpos": np.zeros((3, 2))})  # wrong number of rows, found mid-write
    assert path.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["d.hdf5"]  # no temp file left behind


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda r: r.pop("timeouts"), "missing key.*'timeouts'"),
        (lambda r: r.pop("observations"), "missing key.*'observations'"),
        (lambda r: r.update(rewards=r["rewards"][:-1]), "'rewards' has 11 rows but 'observations' has 12"),
        (lambda r: r.update(actions=r["actions"][:, :, None]), "'actions' has shape .*rank 3"),
        (lambda r: r.update(observations=r["observations"][:, 0]), "'observations' has shape .*rank 1"),
        (lambda r: r.update(rewards=np.ones((12, 2), np.float32)), "'rewards' has shape \\(12, 2\\)"),
        (lambda r: r["observations"].__setitem__((3, 1), np.nan), "'observations' has 1 NaN/inf.*\\(3, 1\\)"),
        (lambda r: r["actions"].__setitem__((0, 0), np.inf), "'actions' has 1 NaN/inf"),
        (lambda r: r["next_observations"].__setitem__((2, 0), -np.inf), "'next_observations' has 1 NaN/inf"),
        (lambda r: r.update(terminals=np.full(12, 2)), "'terminals' has values other than 0/1"),
        (lambda r: r.update(next_observations=r["next_observations"][:, :2]), "'next_observations' has width 2"),
    ],
)
def test_malformed_files_are_refused_with_the_key_named(tmp_path, mutate, pattern):
    rows = episodes_rows([5, 4, 3], ["terminal", "timeout", "cut"])
    mutate(rows)
    path = tmp_path / "bad.hdf5"
    _raw_h5(path, rows)
    with pytest.raises(DataError, match=pattern) as info:
        read_d4rl(path)
    assert str(path) in str(info.value)


def test_empty_dataset(tmp_path):
    rows = {k: v[:0] for k, v in episodes_rows([3], ["timeout"]).items()}
    _raw_h5(tmp_path / "empty.hdf5", rows)
    with pytest.raises(DataError, match="empty dataset"):
        read_d4rl(tmp_path / "empty.hdf5")


def test_string_dtype_refused(tmp_path):
    rows = episodes_rows([3], ["timeout"])
    rows["rewards"] = np.array([b"a", b"b", b"c"])
    _raw_h5(tmp_path / "s.hdf5", rows)
    with pytest.raises(DataError, match="'rewards' has dtype"):
        read_d4rl(tmp_path / "s.hdf5")


def test_actions_outside_the_space(tmp_path):
    rows = episodes_rows([5], ["timeout"])
    rows["actions"][2, 1] = 1.5
    path = write_d4rl(tmp_path / "a.hdf5", rows)
    read_d4rl(path)  # no bounds given: fine
    with pytest.raises(DataError, match=r"outside the action space.*actions\[2, 1\] = 1.5"):
        read_d4rl(path, action_low=-1.0, action_high=1.0)


def test_truncated_and_corrupt_files(tmp_path):
    path = write_d4rl(tmp_path / "d.hdf5", episodes_rows([200, 300], ["timeout", "timeout"], obs_dim=11))
    blob = path.read_bytes()
    (tmp_path / "trunc.hdf5").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="trunc.hdf5.*truncated or corrupt"):
        read_d4rl(tmp_path / "trunc.hdf5")
    (tmp_path / "garbage.hdf5").write_bytes(os.urandom(4096))
    with pytest.raises(DataError, match="garbage.hdf5"):
        read_d4rl(tmp_path / "garbage.hdf5")
    with pytest.raises(DataError, match="no such dataset file"):
        read_d4rl(tmp_path / "missing.hdf5")


def test_flags_may_be_float_and_column_vectors(tmp_path):
    rows = episodes_rows([3, 2], ["terminal", "timeout"])
    rows["terminals"] = rows["terminals"].astype(np.float32)[:, None]
    rows["rewards"] = rows["rewards"][:, None]
    _raw_h5(tmp_path / "f.hdf5", rows)
    data = read_d4rl(tmp_path / "f.hdf5")
    assert data.arrays["terminals"].dtype == bool and data.arrays["terminals"].shape == (5,)
    assert data.arrays["rewards"].shape == (5,)


# --------------------------------------------------------------------------- episode boundaries


def test_transitions_without_next_observations_follow_qlearning_dataset():
    # ep0: 3 steps ending in a fall; ep1: 3 steps ending at the time limit; ep2: 2 steps cut by end of file
    rows = episodes_rows([3, 3, 2], ["terminal", "timeout", "cut"], with_next=False)
    tr = to_transitions(rows)
    obs = rows["observations"]
    # dropped: the timeout row (5: its successor is a reset) and the last row (7: no successor)
    kept = [0, 1, 2, 3, 4, 6]
    np.testing.assert_array_equal(tr["observations"], obs[kept])
    np.testing.assert_array_equal(tr["rewards"], rows["rewards"][kept])
    # s' never crosses an episode: within an episode it is the next row, at a terminal a placeholder (s itself)
    np.testing.assert_array_equal(tr["next_observations"][[0, 1, 3, 4, 5]], obs[[1, 2, 4, 5, 7]])
    np.testing.assert_array_equal(tr["next_observations"][2], obs[2])
    assert (tr["next_observations"][:, 0] == tr["observations"][:, 0]).all()  # same episode id
    np.testing.assert_array_equal(tr["terminals"], [0, 0, 1, 0, 0, 0])
    # a' = the next row's action inside an episode; unknown (masked) at a terminal
    np.testing.assert_array_equal(tr["next_action_valid"], [1, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(tr["next_actions"][[0, 1, 3, 4, 5]], rows["actions"][[1, 2, 4, 5, 7]])
    np.testing.assert_array_equal(tr["next_actions"][2], rows["actions"][2])


def test_transitions_with_next_observations_keep_every_row():
    rows = episodes_rows([3, 3, 2], ["terminal", "timeout", "cut"])
    tr = to_transitions(rows)
    assert len(tr["observations"]) == 8
    np.testing.assert_array_equal(tr["next_observations"], rows["next_observations"])
    # a timeout is not terminal: its transition stays and bootstraps
    np.testing.assert_array_equal(tr["terminals"], [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(tr["timeouts"], [0, 0, 0, 0, 0, 1, 0, 0])
    # a' is unknown at every episode end (terminal, timeout, end of file)
    np.testing.assert_array_equal(tr["next_action_valid"], [1, 1, 0, 1, 1, 0, 1, 0])
    valid = tr["next_action_valid"] == 1
    np.testing.assert_array_equal(tr["next_actions"][valid], rows["actions"][[1, 2, 4, 5, 7]])
    assert all(v.dtype == np.float32 for v in tr.values())


def test_terminal_on_the_last_row_is_kept_without_next_observations():
    rows = episodes_rows([2, 2], ["timeout", "terminal"], with_next=False)
    tr = to_transitions(rows)
    np.testing.assert_array_equal(tr["observations"], rows["observations"][[0, 2, 3]])
    np.testing.assert_array_equal(tr["terminals"], [0, 0, 1])


def test_episode_returns():
    rows = episodes_rows([3, 2, 2], ["terminal", "timeout", "cut"])
    np.testing.assert_allclose(episode_returns(rows["rewards"], rows["terminals"], rows["timeouts"]),
                               [0 + 1 + 2, 100 + 101, 200 + 201])


# --------------------------------------------------------------------------- names and paths


def test_resolve_env_id_and_names():
    assert resolve_env_id("halfcheetah-medium-expert-v2") == ("HalfCheetah-v5", "halfcheetah-medium-expert-v2")
    assert resolve_env_id("walker2d-random-v2") == ("Walker2d-v5", "walker2d-random-v2")
    assert resolve_env_id("Hopper-v5") == ("Hopper-v5", None)
    assert parse_d4rl_name("hopper-medium-replay-v2").kind == "medium-replay"
    with pytest.raises(ConfigError, match="ant-medium-v2.*halfcheetah\\|hopper\\|walker2d"):
        resolve_env_id("ant-medium-v2")
    with pytest.raises(ConfigError, match="kind is random"):
        resolve_env_id("hopper-great-v2")


def test_generated_names_are_their_own():
    assert resolve_env_id("hopper-v5-medium") == ("Hopper-v5", "hopper-v5-medium")
    assert resolve_env_id("walker2d-v5-medium-replay") == ("Walker2d-v5", "walker2d-v5-medium-replay")
    gen = parse_generated_name("halfcheetah-v5-medium-expert")
    assert (gen.env, gen.kind, gen.gym_id, gen.d4rl_counterpart) == \
        ("halfcheetah", "medium-expert", "HalfCheetah-v5", "halfcheetah-medium-expert-v2")
    # the two kinds never parse as each other
    assert parse_generated_name("hopper-medium-v2") is None and parse_d4rl_name("hopper-v5-medium") is None
    assert parse_generated_name("Hopper-v5") is None and parse_d4rl_name("Hopper-v5") is None
    with pytest.raises(ConfigError, match="generated dataset name but is not supported"):
        parse_generated_name("ant-v5-medium")
    # neither kind: the error gives examples of both
    for bad in ("hopper-medium", "hopper_medium-v5", "medium"):
        with pytest.raises(ConfigError, match="hopper-medium-v2.*hopper-v5-medium") as info:
            parse_dataset_name(bad)
        assert "not a dataset name" in str(info.value)


def test_dataset_path_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path / "rl"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    # a missing D4RL file: where to put D4RL's file, and the generated dataset to make instead
    with pytest.raises(DataError, match="D4RL dataset 'hopper-medium-replay-v2' not found.*"
                                        "hopper_medium_replay-v2.hdf5.*rlkit2-data make hopper-v5-medium-replay"):
        resolve_dataset_path("hopper-medium-replay-v2")
    rows = episodes_rows([3], ["timeout"])
    # D4RL's own cache, under D4RL's file name
    d4rl_file = write_d4rl(tmp_path / "d4rl" / "hopper_medium_replay-v2.hdf5", rows)
    assert resolve_dataset_path("hopper-medium-replay-v2") == d4rl_file
    # rlkit2's cache wins
    ours = write_d4rl(tmp_path / "rl" / "hopper-medium-replay-v2.hdf5", rows)
    assert resolve_dataset_path("hopper-medium-replay-v2") == ours
    assert dataset_candidates("hopper-medium-replay-v2")[0] == ours
    # a generated name lives in rlkit2's cache only
    assert dataset_candidates("hopper-v5-medium") == [tmp_path / "rl" / "hopper-v5-medium.hdf5"]
    with pytest.raises(DataError, match="generated dataset 'hopper-v5-medium' not found.*"
                                        "rlkit2-data make hopper-v5-medium --transitions"):
        resolve_dataset_path("hopper-v5-medium")
    gen = write_d4rl(tmp_path / "rl" / "hopper-v5-medium.hdf5", rows, metadata={"generated_by": "rlkit2-data make"})
    assert resolve_dataset_path("hopper-v5-medium") == gen


def test_a_generated_file_under_a_d4rl_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path / "rl"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    rows = episodes_rows([3], ["timeout"])
    # what older rlkit2-data versions wrote under D4RL's name
    write_d4rl(tmp_path / "rl" / "walker2d-medium-v2.hdf5", rows,
               metadata={"behaviour_agent": "sac", "rlkit2_version": "0.1.0", "env_id": "Walker2d-v5",
                         "transitions": 20000, "train_steps": 20000, "seed": 0, "sac_hidden": "64x64"})
    with pytest.raises(DataError, match="walker2d-medium-v2.hdf5: found under D4RL's name 'walker2d-medium-v2', "
                                        "but it is generated data.*'walker2d-v5-medium'.*rlkit2-data make "
                                        "walker2d-v5-medium --transitions 20000 --train-steps 20000 --seed 0 "
                                        "--hidden 64x64"):
        resolve_dataset_path("walker2d-medium-v2")
    # in D4RL's cache too
    write_d4rl(tmp_path / "d4rl" / "hopper_expert-v2.hdf5", rows, metadata={"rlkit2_version": "0.1.0"})
    with pytest.raises(DataError, match="generated data"):
        resolve_dataset_path("hopper-expert-v2")
