"""D4RL-style generation: collection, resume, replay boundaries, files, CLI (tiny budgets)."""

from __future__ import annotations

import numpy as np
import pytest

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError, DataError
from rlkit2.data import load_offline_dataset, read_d4rl
from rlkit2.data.behaviour import replay_rows
from rlkit2.data.cli import main as cli_main
from rlkit2.data.collect import collect, random_actor_factory
from rlkit2.data.genconfig import GenerationConfig
from rlkit2.data.generate import make_all, make_dataset


def _cfg(tmp_path, **kw):
    # behaviour="train": these tests exercise the train-here path even once policies ship with the package
    base = dict(env="hopper", transitions=300, train_steps=1000, eval_every=500, eval_episodes=1, ref_episodes=2,
                learning_starts=300, checkpoint_every=500, chunk_episodes=4, data_dir=str(tmp_path), progress=False,
                behaviour="train")
    base.update(kw)
    return GenerationConfig(**base)


def test_config_validation():
    with pytest.raises(ConfigError, match="env='ant'"):
        GenerationConfig(env="ant")
    with pytest.raises(ConfigError, match="transitions=0"):
        GenerationConfig(env="hopper", transitions=0)


def test_random_collection_is_well_formed_and_resumes_exactly(tmp_path):
    cfg = _cfg(tmp_path / "a")
    rows = collect(cfg, "random", random_actor_factory(cfg), 300)
    assert len(rows["rewards"]) == 300
    ends = rows["terminals"] | rows["timeouts"]
    assert ends[-1] and not (rows["terminals"] & rows["timeouts"]).any()
    # inside an episode s' is the next row's s; random hopper falls (terminals), never runs 1000 steps
    inside = ~ends[:-1]
    np.testing.assert_array_equal(rows["next_observations"][:-1][inside], rows["observations"][1:][inside])
    assert rows["terminals"].sum() >= 5
    assert np.abs(rows["actions"]).max() <= 1.0
    assert rows["qpos"].shape == (300, 6) and rows["qvel"].shape == (300, 6)

    # kill before the last chunk was written: the resumed collection equals the uninterrupted one
    chunks = sorted((cfg.work_dir / "collect" / "random-e4").glob("chunk_*.npz"))
    assert len(chunks) >= 3
    chunks[-1].unlink()
    again = collect(cfg, "random", random_actor_factory(cfg), 300)
    for k in rows:
        np.testing.assert_array_equal(again[k], rows[k])


def test_episodes_end_at_the_time_limit_with_timeouts(tmp_path):
    cfg = _cfg(tmp_path, max_episode_steps=7, chunk_episodes=4)
    from rlkit2.core import FunctionActor

    rows = collect(cfg, "still", lambda seed: FunctionActor(lambda obs: np.zeros(3, np.float32)), 50)
    # standing still, hopper does not fall in 7 steps: every episode is cut by the time limit
    assert not rows["terminals"].any()
    np.testing.assert_array_equal(np.flatnonzero(rows["timeouts"])[:5], [6, 13, 20, 27, 34])


def test_lockstep_lanes_store_whole_episodes_in_order_and_resume_exactly(tmp_path):
    """Episodes run side by side (one batched act a step) are stored one after another, each equal to the same
    seed's episode run alone when the actor is deterministic, and a killed collection resumes exactly."""
    from rlkit2.core import FunctionActor

    def sway(seed):  # deterministic, batch-aware: the action depends on the observation only
        return FunctionActor(lambda obs: np.clip(0.3 * np.sin(np.asarray(obs)[..., :3] * 5), -1, 1).astype(np.float32))

    cfg = _cfg(tmp_path / "a", max_episode_steps=40, chunk_episodes=4)
    rows = collect(cfg, "sway-x4", sway, 300, lanes=4)
    alone = collect(_cfg(tmp_path / "b", max_episode_steps=40, chunk_episodes=4), "sway", sway, 300)
    ends = np.flatnonzero(rows["terminals"] | rows["timeouts"])
    assert len(ends) >= 4 and not (rows["terminals"] & rows["timeouts"]).any()
    n = ends[3] + 1  # the first chunk's four episodes, in seed order, match the one-lane collection
    for k in ("observations", "actions", "rewards", "terminals", "timeouts", "qpos"):
        np.testing.assert_allclose(rows[k][:n], alone[k][:n], atol=1e-6)
    inside = np.ones(len(rows["rewards"]), bool)
    inside[ends] = False
    np.testing.assert_array_equal(rows["next_observations"][:-1][inside[:-1]], rows["observations"][1:][inside[:-1]])
    chunks = sorted((cfg.work_dir / "collect" / "sway-x4-e4").glob("chunk_*.npz"))
    chunks[-1].unlink()
    again = collect(cfg, "sway-x4", sway, 300, lanes=4)
    for k in rows:
        np.testing.assert_array_equal(again[k], rows[k])


def test_medium_replay_boundaries_from_the_replay(tmp_path):
    cfg = _cfg(tmp_path)
    rng = np.random.default_rng(0)
    # three episodes in replay order: 4 steps ending in a fall, 3 steps cut by the time limit, 3 more
    obs, nxt, term = [], [], []
    for n, fall in ((4, True), (3, False), (3, False)):
        s = rng.normal(size=(n + 1, 11)).astype(np.float32)
        obs.append(s[:-1])
        nxt.append(s[1:])
        t = np.zeros(n, np.float32)
        t[-1] = float(fall)
        term.append(t)
    arrays = {"observations": np.concatenate(obs), "next_observations": np.concatenate(nxt),
              "actions": rng.uniform(-1, 1, (10, 3)).astype(np.float32), "rewards": np.arange(10, dtype=np.float32),
              "terminals": np.concatenate(term)}
    ckpt.save({"replay": {"arrays": arrays}}, ckpt.checkpoint_path(cfg.work_dir / "sac" / "checkpoints", 10))
    rows = replay_rows(cfg, upto_step=10)
    np.testing.assert_array_equal(rows["terminals"], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(rows["timeouts"], [0, 0, 0, 0, 0, 0, 1, 0, 0, 1])
    assert len(replay_rows(cfg, upto_step=5)["rewards"]) == 5


def test_random_dataset_file_cli_and_loader(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLKIT2_POLICIES_DIR", str(tmp_path / "no-policies"))  # the train-here path
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    assert cli_main(["make", "hopper-v5-random", "--transitions", "300", "--quiet"]) == 0
    path = tmp_path / "hopper-v5-random.hdf5"
    data = read_d4rl(path)
    md = data.metadata
    assert md["env_id"] == "Hopper-v5" and md["kind"] == "random" and md["transitions"] == 300
    assert md["dataset_name"] == "hopper-v5-random" and md["rlkit2_version"] and "d4rl_name" not in md
    assert md["generated_by"] == "rlkit2-data make" and md["d4rl_counterpart"] == "hopper-random-v2"
    assert md["behaviour_source"] == "trained"
    assert md["reference_returns"] == "d4rl" and "D4RL's reference returns" in md["reference_note"]
    assert md["ref_random_return_d4rl"] == pytest.approx(-20.272305)
    assert np.isfinite(md["ref_random_return_v5"]) and "infos/qpos" not in data.arrays
    assert data.infos["qpos"].shape == (300, 6)
    # the trainer's loader finds it by its generated name, and the same settings are not remade
    ds = load_offline_dataset({"id": "hopper-v5-random"})
    assert ds.source == str(path) and len(ds) > 250 and ds.env_id == "Hopper-v5"
    assert ds.dataset_name == "hopper-v5-random" and ds.d4rl_name is None
    assert load_offline_dataset({"id": "Hopper-v5", "dataset": "hopper-v5-random"}).source == str(path)
    from rlkit2.data import score_function

    assert score_function({"id": "hopper-v5-random"}, ds.metadata)(3234.3) == pytest.approx(100.0)  # D4RL's refs
    mtime = path.stat().st_mtime_ns
    assert cli_main(["make", "hopper-v5-random", "--transitions", "300", "--quiet"]) == 0
    assert path.stat().st_mtime_ns == mtime
    # other settings on the same output: refused unless --force
    assert cli_main(["make", "hopper-v5-random", "--transitions", "200", "--quiet"]) == 1
    assert "--force" in capsys.readouterr().err
    assert cli_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "transitions:" in out and "dataset name: hopper-v5-random" in out and "D4RL's own file: no" in out
    assert cli_main(["info", "hopper-v5-random"]) == 0

    # the same file put under D4RL's name is refused: it is not D4RL's hopper-random-v2
    import shutil

    shutil.copy(path, tmp_path / "hopper-random-v2.hdf5")
    with pytest.raises(DataError, match="found under D4RL's name 'hopper-random-v2', but it is generated data.*"
                                        "hopper-v5-random.*rlkit2-data make hopper-v5-random --transitions 300"):
        load_offline_dataset({"id": "hopper-random-v2"})
    assert cli_main(["info", "hopper-random-v2"]) == 1
    assert "generated data" in capsys.readouterr().err


def test_make_refuses_d4rl_and_unknown_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path))
    assert cli_main(["make", "hopper-medium-v2", "--transitions", "300", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "'hopper-medium-v2' is D4RL's dataset name" in err and "rlkit2-data make hopper-v5-medium" in err
    assert cli_main(["make", "hopper-all-v2", "--quiet"]) == 2
    assert "hopper-v5-all" in capsys.readouterr().err
    assert cli_main(["make", "hopper-medium", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "hopper-medium-v2" in err and "hopper-v5-medium" in err
    # names are all checked before any work: nothing was made
    assert cli_main(["make", "hopper-v5-random", "walker2d-medium-replay-v2", "--quiet"]) == 1
    assert "walker2d-v5-medium-replay" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="D4RL's dataset name.*'hopper-v5-expert'"):
        make_dataset("hopper-expert-v2", _cfg(tmp_path))
    from rlkit2.data.cli import expand_names

    assert expand_names(["walker2d-v5-all"]) == [f"walker2d-v5-{k}" for k in
                                                 ("random", "medium", "medium-replay", "medium-expert", "expert")]


def test_name_must_match_config(tmp_path):
    with pytest.raises(ConfigError, match="is for walker2d"):
        make_dataset("walker2d-v5-random", _cfg(tmp_path))
    with pytest.raises(DataError, match="no SAC checkpoint"):
        replay_rows(_cfg(tmp_path), 10)


@pytest.mark.slow
def test_whole_pipeline_tiny(tmp_path):
    """Train SAC briefly, pick medium/expert, make all five kinds, resume is a no-op."""
    cfg = _cfg(tmp_path, train_steps=1500, eval_every=500, hidden=(32, 32))
    paths = make_all(cfg)
    files = {k: read_d4rl(p) for k, p in paths.items()}
    for k in ("random", "medium", "expert"):
        assert len(files[k]) == 300
    assert len(files["medium-expert"]) == 600
    me = files["medium-expert"].arrays
    np.testing.assert_array_equal(me["observations"][:300], files["medium"].arrays["observations"])
    np.testing.assert_array_equal(me["observations"][300:], files["expert"].arrays["observations"])
    assert files["medium"].metadata["policy_step"] < files["expert"].metadata["policy_step"]
    assert len(files["medium-replay"]) == files["medium"].metadata["medium_step"]
    for d in files.values():
        assert d.metadata["ref_expert_return_v5"] == files["expert"].metadata["policy_return"]
    # snapshots are reusable policies
    from rlkit2.data.behaviour import load_snapshot_agent

    agent = load_snapshot_agent(files["expert"].metadata["policy_checkpoint"])
    assert agent.policy.act(np.zeros(11, np.float32)).shape == (3,)
    again = make_all(cfg)
    assert again == paths
    # a longer budget starts from this run (resuming its trainer checkpoint) instead of from scratch
    import dataclasses

    from rlkit2.data.behaviour import extend_training, train_behaviour_policies

    longer = dataclasses.replace(cfg, train_steps=2000)
    extend_training(longer, 1500)
    snaps = train_behaviour_policies(longer)
    assert [s["step"] for s in snaps] == [500, 1000, 1500, 2000]

    rows = replay_rows(longer, 2000)
    assert len(rows["rewards"]) == 2000
    np.testing.assert_array_equal(rows["observations"][:1500], replay_rows(cfg, 1500)["observations"])


def test_stop_training_uses_the_snapshots_so_far(tmp_path):
    from rlkit2.data.behaviour import _snapshot_path, stop_training, train_behaviour_policies, training_info

    cfg = _cfg(tmp_path)
    with pytest.raises(DataError, match="no policy snapshots"):
        stop_training(cfg)
    for step, ret in ((500, 10.0), (1000, 30.0)):
        ckpt.save({"step": step, "eval_return": ret}, _snapshot_path(cfg, step))
    snaps = stop_training(cfg)
    assert [s["step"] for s in snaps] == [500, 1000] and snaps[1]["eval_return"] == 30.0
    info = training_info(cfg)
    assert info["stopped_early"] is True and info["trained_env_steps"] == 1000
    assert train_behaviour_policies(cfg) == snaps  # a finished run is not trained further


def test_extend_training_moves_the_full_ring_cursor(tmp_path):
    from rlkit2.data.behaviour import _snapshot_path, extend_training

    short = _cfg(tmp_path, train_steps=1000)
    ckpt.save({"step": 500, "eval_return": 1.0}, _snapshot_path(short, 500))
    arrays = {"observations": np.zeros((1000, 11), np.float32)}
    state = {"step": 1000, "ranks": [{"replay": {"arrays": arrays, "size": 1000, "cursor": 0}}]}
    ckpt.save(state, ckpt.checkpoint_path(short.work_dir / "sac" / "checkpoints", 1000))
    long = _cfg(tmp_path, train_steps=3000)
    dst = extend_training(long, 1000)
    assert dst == long.work_dir and (dst / "policies" / "step_000000500.pt").is_file()
    step, path = ckpt.list_checkpoints(dst / "sac" / "checkpoints")[-1]
    assert step == 1000 and ckpt.load(path)["ranks"][0]["replay"]["cursor"] == 1000
    with pytest.raises(DataError, match="already has a run"):
        extend_training(long, 1000)
    with pytest.raises(ConfigError, match="must be below"):
        extend_training(long, 3000)


def test_a_run_whose_checkpoints_all_fail_is_not_restarted_over_its_snapshots(tmp_path):
    from rlkit2.data.behaviour import _snapshot_path, train_behaviour_policies

    cfg = _cfg(tmp_path)
    ckpt.save({"step": 500, "eval_return": 1.0}, _snapshot_path(cfg, 500))
    bad = ckpt.checkpoint_path(cfg.work_dir / "sac" / "checkpoints", 500)
    ckpt.save({"step": 500}, bad)
    bad.write_bytes(bad.read_bytes()[:-8])  # truncated: fails its checksum
    before = _snapshot_path(cfg, 500).read_bytes()
    with pytest.raises(DataError, match=r"none loads, so it cannot resume.*corrupted or truncated"):
        train_behaviour_policies(cfg)
    assert _snapshot_path(cfg, 500).read_bytes() == before and bad.is_file()  # nothing touched


def test_chunks_collected_by_several_processes_make_the_same_rows(tmp_path):
    """Chunks depend on their index alone: one worker, three workers and a resume after losing a middle chunk
    give the same dataset."""
    one = collect(_cfg(tmp_path / "a", workers=1), "random", random_actor_factory(_cfg(tmp_path / "a")), 300)
    cfg = _cfg(tmp_path / "b", workers=3)
    three = collect(cfg, "random", random_actor_factory(cfg), 300)
    for k in one:
        np.testing.assert_array_equal(three[k], one[k])
    chunks = sorted((cfg.work_dir / "collect").glob("random-e4/chunk_*.npz"))
    assert len(chunks) >= 4
    chunks[1].unlink()
    again = collect(cfg, "random", random_actor_factory(cfg), 300)
    for k in one:
        np.testing.assert_array_equal(again[k], one[k])
    with pytest.raises(ConfigError, match="workers=-1"):
        _cfg(tmp_path, workers=-1)
