"""Normalised scores on both reference sets, and the loader the control trainer calls."""

from __future__ import annotations

import numpy as np
import pytest
from rlkit2.envs.gym_mujoco import GymEnvConfig

from rlkit2.core import ConfigError, DataError, FunctionActor
from rlkit2.data import (
    D4RL_REFERENCE,
    add_v5_score,
    evaluate_with_scores,
    load_offline_dataset,
    normalized_score,
    reference_returns,
    score_function,
    score_functions,
    write_d4rl,
)
from rlkit2.data import scores as scores_mod
from rlkit2.replay import TransitionReplay
from tests.data.helpers_data import episodes_rows


def test_d4rl_reference_numbers():
    fn = score_function(GymEnvConfig(id="hopper-medium-v2"))
    assert fn(-20.272305) == pytest.approx(0.0)
    assert fn(3234.3) == pytest.approx(100.0)
    assert fn(1617.0) == pytest.approx(100 * (1617.0 + 20.272305) / (3234.3 + 20.272305))
    assert score_function(GymEnvConfig(id="HalfCheetah-v5"))(12135.0) == pytest.approx(100.0)
    assert reference_returns({"id": "walker2d-expert-v2"}) == D4RL_REFERENCE["walker2d"]
    assert score_function(GymEnvConfig(id="Ant-v5")) is None
    # a generated dataset's env is scored on D4RL's references too (comparable in spirit)
    assert score_function(GymEnvConfig(id="hopper-v5-medium"))(3234.3) == pytest.approx(100.0)
    assert reference_returns({"id": "Walker2d-v5", "dataset": "walker2d-v5-medium-replay"}) == \
        D4RL_REFERENCE["walker2d"]
    with pytest.raises(ValueError, match="degenerate"):
        normalized_score(1.0, 2.0, 2.0)


def test_v5_references_from_metadata_table_and_minari(monkeypatch):
    cfg = GymEnvConfig(id="hopper-medium-v2")
    md = {"ref_random_return_v5": 10.0, "ref_expert_return_v5": 2010.0}
    fns = score_functions(cfg, md)
    assert fns["eval/normalized_score"](3234.3) == pytest.approx(100.0)  # D4RL refs stay primary
    assert fns["eval/normalized_score_v5"](1010.0) == pytest.approx(50.0)
    # no metadata: the measured table, when the env has an entry
    monkeypatch.setitem(scores_mod.V5_REFERENCE, "hopper", (0.0, 1000.0))
    assert score_functions(cfg)["eval/normalized_score_v5"](250.0) == pytest.approx(25.0)
    # a Minari dataset's own refs on an env D4RL does not know become the primary score
    other = {"id": "Pusher-v5", "dataset": "minari:mujoco/pusher/expert-v0"}
    fn = score_function(other, {"ref_min_score": -100.0, "ref_max_score": -20.0})
    assert fn(-60.0) == pytest.approx(50.0)
    assert "eval/normalized_score_v5" not in score_functions(other, {"ref_min_score": -100.0, "ref_max_score": -20.0})


def test_add_v5_score_matches_per_episode_mean():
    md = {"ref_random_return_v5": 10.0, "ref_expert_return_v5": 2010.0}
    rets = np.array([100.0, 500.0, 1500.0])
    metrics = {"eval/return": rets.mean(), "eval/return_std": rets.std()}
    add_v5_score(metrics, {"id": "Hopper-v5"}, md)
    per_ep = 100 * (rets - 10.0) / 2000.0
    assert metrics["eval/normalized_score_v5"] == pytest.approx(per_ep.mean())
    assert metrics["eval/normalized_score_v5_std"] == pytest.approx(per_ep.std())


def test_evaluate_with_scores_on_a_real_env():
    import gymnasium as gym

    env = gym.make("Hopper-v5", max_episode_steps=20)
    actor = FunctionActor(lambda obs: np.zeros(3, np.float32))
    md = {"ref_random_return_v5": 0.0, "ref_expert_return_v5": 1000.0}
    m = evaluate_with_scores(env, actor, 2, GymEnvConfig(id="hopper-medium-v2"), md, seed=1)
    assert m["eval/normalized_score"] == pytest.approx(score_function({"id": "hopper-medium-v2"})(m["eval/return"]))
    assert m["eval/normalized_score_v5"] == pytest.approx(m["eval/return"] / 10.0)


# --------------------------------------------------------------------------- load_offline_dataset


def _hopper_rows(seed=0):
    rows = episodes_rows([6, 5, 4], ["terminal", "timeout", "cut"], obs_dim=11, act_dim=3, seed=seed)
    return rows


def test_load_from_path_feeds_the_replay(tmp_path):
    path = write_d4rl(tmp_path / "h.hdf5", _hopper_rows(), metadata={"ref_random_return_v5": 1.0,
                                                                    "ref_expert_return_v5": 101.0})
    ds = load_offline_dataset(GymEnvConfig(id="Hopper-v5", dataset=str(path)))
    assert len(ds) == 15 and ds.env_id == "Hopper-v5" and ds.d4rl_name is None
    assert ds.obs_dim == 11 and ds.act_dim == 3
    np.testing.assert_allclose(ds.episode_returns, [15, 510, 806])
    replay = TransitionReplay.from_arrays(ds.arrays)
    assert replay.with_next_actions and len(replay) == 15
    batch = replay.sample(32)
    assert batch.next_actions is not None and batch.next_actions.shape == (32, 3)
    fn = score_function(GymEnvConfig(id="Hopper-v5", dataset=str(path)), ds.metadata)
    assert fn(3234.3) == pytest.approx(100.0)
    assert score_functions({"id": "Hopper-v5"}, ds.metadata)["eval/normalized_score_v5"](51.0) == pytest.approx(50.0)


def test_load_by_d4rl_name_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path / "rl"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    with pytest.raises(DataError, match="D4RL dataset 'hopper-medium-v2' not found.*rlkit2-data make hopper-v5-medium"):
        load_offline_dataset(GymEnvConfig(id="hopper-medium-v2"))
    # a file as D4RL's downloader names it, without next_observations (as the real v2 files)
    rows = _hopper_rows()
    del rows["next_observations"]
    write_d4rl(tmp_path / "d4rl" / "hopper_medium-v2.hdf5", rows, infos={"qpos": np.arange(15.0)},
               metadata={"algorithm": "SAC"})
    ds = load_offline_dataset(GymEnvConfig(id="hopper-medium-v2"))
    assert ds.d4rl_name == "hopper-medium-v2" and ds.env_id == "Hopper-v5"
    assert len(ds) == 13  # the timeout row (10) and the cut last row (14) are dropped
    np.testing.assert_array_equal(ds.infos["qpos"], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13])  # aligned
    assert ds.metadata["algorithm"] == "SAC"
    # dataset named in env.dataset, env given as a Gymnasium id
    ds2 = load_offline_dataset(GymEnvConfig(id="Hopper-v5", dataset="hopper-medium-v2"))
    assert ds2.d4rl_name == "hopper-medium-v2" and ds2.dataset_name == "hopper-medium-v2" and len(ds2) == 13


def test_load_by_generated_name_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path / "rl"))
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    with pytest.raises(DataError, match="generated dataset 'hopper-v5-medium' not found.*"
                                        "rlkit2-data make hopper-v5-medium"):
        load_offline_dataset(GymEnvConfig(id="hopper-v5-medium"))
    write_d4rl(tmp_path / "rl" / "hopper-v5-medium.hdf5", _hopper_rows(),
               metadata={"generated_by": "rlkit2-data make", "dataset_name": "hopper-v5-medium", "env_id": "Hopper-v5"})
    for cfg in (GymEnvConfig(id="hopper-v5-medium"), GymEnvConfig(id="Hopper-v5", dataset="hopper-v5-medium")):
        ds = load_offline_dataset(cfg)
        assert ds.dataset_name == "hopper-v5-medium" and ds.d4rl_name is None and ds.env_id == "Hopper-v5"
        assert len(ds) == 15
    # a generated dataset is never found under D4RL's name
    with pytest.raises(DataError, match="D4RL dataset 'hopper-medium-v2' not found"):
        load_offline_dataset(GymEnvConfig(id="hopper-medium-v2"))


def test_unknown_dataset_name_lists_both_kinds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cfg in (GymEnvConfig(id="Hopper-v5", dataset="hopper-medium"), {"id": "", "dataset": "hopper_medium_v5"}):
        with pytest.raises(ConfigError, match="not a dataset name.*hopper-medium-v2.*hopper-v5-medium"):
            load_offline_dataset(cfg)
    with pytest.raises(ConfigError, match="generated dataset name but is not supported.*hopper-medium-v2"):
        load_offline_dataset(GymEnvConfig(id="Hopper-v5", dataset="hopper-v5-great"))


def test_dataset_must_match_env(tmp_path):
    path = write_d4rl(tmp_path / "h.hdf5", _hopper_rows())
    with pytest.raises(DataError, match="width 11 but env HalfCheetah-v5 observes 17"):
        load_offline_dataset(GymEnvConfig(id="HalfCheetah-v5", dataset=str(path)))
    rows = _hopper_rows()
    rows["actions"][3, 0] = 1.2
    bad = write_d4rl(tmp_path / "a.hdf5", rows)
    with pytest.raises(DataError, match="outside the action space"):
        load_offline_dataset(GymEnvConfig(id="Hopper-v5", dataset=str(bad)))
    with pytest.raises(ConfigError, match="names no dataset"):
        load_offline_dataset(GymEnvConfig(id="Hopper-v5"))
    with pytest.raises(DataError, match="no such dataset file"):
        load_offline_dataset(GymEnvConfig(id="Hopper-v5", dataset=str(tmp_path / "nope.hdf5")))
