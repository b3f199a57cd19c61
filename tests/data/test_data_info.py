"""`rlkit2-data info` tells D4RL, robomimic and Minari apart by the file's keys and describes each."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from rlkit2.data.cli import main as data_main
from rlkit2.data.d4rl import write_d4rl
from rlkit2.data.describe import detect_format
from rlkit2.data.robomimic import Demo
from rlkit2.data.robomimic_writer import write_robomimic


def _demo(T: int, seed: int, success: bool = True) -> Demo:
    r = np.random.default_rng(seed)
    obs = {"object": r.normal(size=(T + 1, 10)), "robot0_eef_pos": r.normal(size=(T + 1, 3)),
           "agentview_image": np.zeros((T + 1, 8, 8, 3), np.uint8)}
    dones = np.zeros(T)
    dones[-1] = float(success)
    return Demo({k: v[:-1] for k, v in obs.items()}, r.uniform(-1, 1, (T, 7)), dones.copy(), dones,
                {k: v[1:] for k, v in obs.items()}, r.normal(size=(T, 32)))


def test_info_on_a_robomimic_file(tmp_path, capsys):
    path = write_robomimic(tmp_path / "demos.hdf5", [_demo(5, 0), _demo(7, 1), _demo(4, 2, success=False)],
                           {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20}},
                           masks={"train": ["demo_0", "demo_1"], "valid": ["demo_2"]})
    assert detect_format(path) == "robomimic"
    assert data_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format: robomimic" in out and "missing key" not in out
    assert "env_args: env_name=Lift  (robosuite)" in out and "env_kwargs/control_freq: 20" in out
    assert "demos: 3  transitions: 16  (data.attrs total: 16)" in out
    assert "demo length: mean 5.3  min 4  max 7" in out
    assert "successful demos (dones = 1 at the last step): 2/3" in out
    assert "obs/object: (10,) float64" in out and "obs/agentview_image: (8, 8, 3) uint8" in out
    assert "actions: dim 7" in out and "next_obs: in every demo" in out and "states: in 3/3 demos (32,)" in out
    assert "masks (filter keys): train (2 demos), valid (1 demos)" in out
    assert f"env.dataset={path} env.valid_filter_key=valid" in out  # robomimic's split, used as such
    assert "(the demos outside mask/valid are trained on, the 1 in it validate" in out


def test_info_on_d4rl_file_and_unknown_hdf5(tmp_path, capsys):
    n = 20
    r = np.random.default_rng(0)
    timeouts = np.zeros(n, bool)
    timeouts[9] = timeouts[19] = True
    path = write_d4rl(tmp_path / "rows.hdf5", {
        "observations": r.normal(size=(n, 3)).astype(np.float32), "actions": r.uniform(-1, 1, (n, 1)),
        "rewards": np.ones(n), "terminals": np.zeros(n, bool), "timeouts": timeouts},
        metadata={"env_id": "Pendulum-v1"})
    assert detect_format(path) == "d4rl"
    assert data_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format: D4RL" in out and "transitions: 18  episodes: 2" in out  # the timeout rows have no successor
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f["weights"] = np.zeros(3)
    assert data_main(["info", str(tmp_path / "other.hdf5")]) == 1
    err = capsys.readouterr().err
    assert "not a dataset format" in err and "weights" in err and "robomimic" in err


def test_info_on_a_minari_dataset_directory(tmp_path, monkeypatch, capsys):
    pytest.importorskip("minari")
    import gymnasium as gym

    from rlkit2.data.minari_io import write_minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = gym.make("Hopper-v5")
    r = np.random.default_rng(0)
    eps = [{"observations": r.normal(size=(n + 1, 11)), "actions": r.uniform(-1, 1, (n, 3)).astype(np.float32),
            "rewards": np.ones(n), "terminations": np.eye(n, dtype=bool)[-1], "truncations": np.zeros(n, bool)}
           for n in (4, 3)]
    where = write_minari("mujoco/hopper/tiny-v0", eps, env.observation_space, env.action_space, env_id="Hopper-v5")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))  # found from the path alone
    for given in (where, where / "data" / "main_data.hdf5"):
        assert detect_format(given) == "minari"
        assert data_main(["info", str(given)]) == 0
        out = capsys.readouterr().out
        assert "format: Minari" in out and "source: minari:mujoco/hopper/tiny-v0" in out
        assert "transitions: 7  episodes: 2" in out
    import os

    assert os.environ["MINARI_DATASETS_PATH"] == str(tmp_path / "elsewhere")  # restored
