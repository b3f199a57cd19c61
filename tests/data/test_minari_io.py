"""Minari datasets on disk, written by the test in Minari's layout, read through the real `minari` package."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from rlkit2.core import DataError
from rlkit2.data import load_offline_dataset
from rlkit2.data.minari_io import read_minari, write_minari

minari = pytest.importorskip("minari")


def _episodes(lengths, ends, obs_dim=11, act_dim=3, seed=0):
    rng = np.random.default_rng(seed)
    eps = []
    for e, (n, end) in enumerate(zip(lengths, ends, strict=True)):
        obs = rng.normal(size=(n + 1, obs_dim)).astype(np.float64)
        obs[:, 0] = e
        obs[:, 1] = np.arange(n + 1)
        term = np.zeros(n, bool)
        trunc = np.zeros(n, bool)
        if end == "terminal":
            term[-1] = True
        elif end == "timeout":
            trunc[-1] = True
        eps.append({"observations": obs, "actions": rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
                    "rewards": np.arange(n, dtype=np.float64) + 100 * e, "terminations": term, "truncations": trunc})
    return eps


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_layout_is_minaris_own(minari_root):
    """What write_minari lays down is what the installed minari package loads."""
    env = gym.make("Hopper-v5")
    eps = _episodes([4, 3], ["terminal", "timeout"])
    path = write_minari("mujoco/hopper/tiny-v0", eps, env.observation_space, env.action_space, env_id="Hopper-v5",
                        extra_metadata={"ref_min_score": -20.0, "ref_max_score": 3000.0})
    assert path == minari_root / "mujoco" / "hopper" / "tiny-v0"
    assert (path / "data" / "main_data.hdf5").is_file() and (path / "data" / "metadata.json").is_file()
    ds = minari.load_dataset("mujoco/hopper/tiny-v0", download=False)
    assert ds.total_episodes == 2 and ds.total_steps == 7
    ep = ds[1]
    np.testing.assert_array_equal(ep.rewards, eps[1]["rewards"])
    assert ds.env_spec.id == "Hopper-v5"
    meta = json.loads((path / "data" / "metadata.json").read_text())
    assert meta["dataset_id"] == "mujoco/hopper/tiny-v0"


def test_read_minari_into_d4rl_rows_without_crossing_episodes(minari_root):
    env = gym.make("Hopper-v5")
    eps = _episodes([4, 3, 2], ["terminal", "timeout", "cut"])
    write_minari("mujoco/hopper/tiny-v0", eps, env.observation_space, env.action_space, env_id="Hopper-v5",
                 extra_metadata={"ref_min_score": -20.0, "ref_max_score": 3000.0})
    data = read_minari("mujoco/hopper/tiny-v0")
    rows = data.arrays
    assert len(rows["observations"]) == 9
    np.testing.assert_allclose(rows["observations"], np.concatenate([e["observations"][:-1] for e in eps]), rtol=1e-6)
    np.testing.assert_allclose(rows["next_observations"], np.concatenate([e["observations"][1:] for e in eps]),
                               rtol=1e-6)
    np.testing.assert_array_equal(rows["terminals"], [0, 0, 0, 1, 0, 0, 0, 0, 0])
    # the time-limit end and the collector's cut are timeouts (never terminals)
    np.testing.assert_array_equal(rows["timeouts"], [0, 0, 0, 0, 0, 0, 1, 0, 1])
    assert data.metadata["env_id"] == "Hopper-v5"
    assert data.metadata["ref_min_score"] == -20.0 and data.metadata["ref_max_score"] == 3000.0

    # the same through the one loader the trainer calls, with a' masked at every episode end
    ds = load_offline_dataset({"id": "Hopper-v5", "dataset": "minari:mujoco/hopper/tiny-v0"})
    assert ds.env_id == "Hopper-v5" and ds.source == "minari:mujoco/hopper/tiny-v0"
    np.testing.assert_array_equal(ds.arrays["next_action_valid"], [1, 1, 1, 0, 1, 1, 0, 1, 0])
    assert (ds.arrays["next_observations"][:, 0] == ds.arrays["observations"][:, 0]).all()
    np.testing.assert_allclose(ds.episode_returns, [6, 303, 401])


def test_missing_minari_dataset_never_downloads(minari_root):
    with pytest.raises(DataError, match="not found.*never downloads"):
        read_minari("mujoco/hopper/absent-v0")


def test_minari_actions_outside_space_refused(minari_root):
    env = gym.make("Hopper-v5")
    eps = _episodes([4], ["timeout"])
    eps[0]["actions"][1, 2] = 3.0
    write_minari("mujoco/hopper/bad-v0", eps, env.observation_space, env.action_space, env_id="Hopper-v5")
    with pytest.raises(DataError, match="outside the action space"):
        read_minari("mujoco/hopper/bad-v0")


def test_minari_corrupt_metadata(minari_root):
    env = gym.make("Hopper-v5")
    path = write_minari("mujoco/hopper/broken-v0", _episodes([3], ["timeout"]), env.observation_space,
                        env.action_space)
    (path / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(DataError, match="broken-v0"):
        read_minari("mujoco/hopper/broken-v0")


def test_write_refuses_to_overwrite(minari_root):
    env = gym.make("Hopper-v5")
    write_minari("ns/d-v0", _episodes([3], ["timeout"]), env.observation_space, env.action_space)
    with pytest.raises(DataError, match="already exists"):
        write_minari("ns/d-v0", _episodes([3], ["timeout"]), env.observation_space, env.action_space)
