"""Shipped behaviour policies: export -> load, integrity and shape checks, and datasets made from them
(tiny SAC actors the tests export themselves into a tmp policies dir)."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import rlkit2
from rlkit2 import checkpoint as ckpt
from rlkit2.core import DataError
from rlkit2.data import load_offline_dataset, read_d4rl
from rlkit2.data.cli import main as cli_main
from rlkit2.data.genconfig import GenerationConfig
from rlkit2.data.generate import make_dataset
from rlkit2.data.shipped import (
    load_shipped_policy,
    policies_dir,
    replay_schedule_index,
    shipped_roles,
)
from rlkit2.data.shipped_export import export_policy


def tiny_sac(gym_id: str = "Hopper-v5", seed: int = 0):
    env = gym.make(gym_id)
    o, a = env.observation_space.shape[0], env.action_space.shape[0]
    replay = {"observations": np.zeros((8, o), np.float32), "actions": np.zeros((8, a), np.float32),
              "rewards": np.zeros(8, np.float32), "next_observations": np.zeros((8, o), np.float32),
              "terminals": np.zeros(8, np.float32)}
    return rlkit2.make("sac", env, replay, seed=seed, hidden=[8], batch_size=4)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A policies dir for hopper: snapshots at 100 and 200 env steps, medium at 300, expert at 1000."""
    root = tmp_path_factory.mktemp("policies")
    for i, (role, steps) in enumerate((("snapshot-100", 100), ("snapshot-200", 200), ("medium", 300),
                                       ("expert", 1000))):
        export_policy(tiny_sac(seed=i), "hopper", role, root, seed=0, env_steps=steps, learning_starts=50,
                      returns=(10.0 * (i + 1), 1.0))
    return root


OBS = np.random.default_rng(0).normal(size=(5, 11)).astype(np.float32)


def test_export_then_load_acts_the_same(tmp_path):
    agent = tiny_sac(seed=3)
    path = export_policy(agent, "Hopper-v5", "medium", tmp_path, seed=7, env_steps=1234, eval_episodes=2)
    assert path == tmp_path / "hopper" / "medium.safetensors"
    card = json.loads((tmp_path / "hopper" / "medium.json").read_text())
    assert card["env_id"] == "Hopper-v5" and card["algorithm"] == "sac" and card["hidden"] == [8]
    assert card["env_steps"] == 1234 and card["seed"] == 7 and card["eval_episodes"] == 2
    assert np.isfinite(card["return_mean"]) and card["return_std"] >= 0  # measured: 2 greedy episodes
    assert set(card["versions"]) >= {"torch", "gymnasium", "mujoco", "rlkit2"} and len(card["sha256"]) == 64
    loaded = load_shipped_policy("hopper", "medium", policies_dir=tmp_path)
    for o in OBS:
        np.testing.assert_array_equal(loaded.policy.act(o), agent.policy.act(o))
    # the explorer samples: seeded, reproducible, and not the greedy action
    a1 = [loaded.make_explorer(5).act(o) for o in OBS]
    a2 = [loaded.make_explorer(5).act(o) for o in OBS]
    np.testing.assert_array_equal(a1, a2)
    assert not np.allclose(a1, [loaded.policy.act(o) for o in OBS])
    assert not np.allclose(a1, [loaded.make_explorer(6).act(o) for o in OBS])
    assert shipped_roles("hopper", tmp_path) == ["medium"] and shipped_roles("walker2d", tmp_path) == []


def test_export_from_generation_snapshots(tmp_path):
    """The snapshot format of rlkit2.data.behaviour (whole learner) and carried snapshots (actor only)."""
    import dataclasses

    agent = tiny_sac(seed=4)
    common = {"step": 5000, "eval_return": 12.0, "agent": "sac", "agent_config": dataclasses.asdict(agent.config),
              "spec": dataclasses.asdict(agent.spec), "env_id": "Hopper-v5"}
    full = ckpt.save({**common, "learner": agent.learner.state_dict()}, tmp_path / "step_000005000.pt")
    carried = ckpt.save({**common, "actor": agent.learner.actor.state_dict()}, tmp_path / "carried.pt")
    export_policy(full, "hopper", "snapshot-5000", tmp_path / "a", seed=0, returns=(1.0, 0.0))
    export_policy(carried, "hopper", "expert", tmp_path / "a", seed=0, returns=(1.0, 0.0))
    for role in ("snapshot-5000", "expert"):
        loaded = load_shipped_policy("hopper", role, policies_dir=tmp_path / "a")
        assert loaded.card["env_steps"] == 5000
        np.testing.assert_array_equal(loaded.policy.act(OBS), agent.policy.act(OBS))


def test_a_flipped_byte_is_refused_naming_the_file(tmp_path):
    path = export_policy(tiny_sac(), "hopper", "expert", tmp_path, seed=0, env_steps=10, returns=(1.0, 0.0))
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=f"{path}: sha256 .* does not match its card"):
        load_shipped_policy("hopper", "expert", policies_dir=tmp_path)


def test_a_card_for_the_wrong_env_is_refused(tmp_path):
    # halfcheetah weights (observation 17, action 6) shipped as hopper's, card edited to claim Hopper-v5
    src = export_policy(tiny_sac("HalfCheetah-v5"), "halfcheetah", "medium", tmp_path, seed=0, env_steps=10,
                        returns=(1.0, 0.0))
    (tmp_path / "hopper").mkdir()
    dst = tmp_path / "hopper" / "medium.safetensors"
    dst.write_bytes(src.read_bytes())
    card = json.loads(src.with_suffix(".json").read_text())
    (tmp_path / "hopper" / "medium.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="card is for HalfCheetah-v5 .*shipped as hopper's policy"):
        load_shipped_policy("hopper", "medium", policies_dir=tmp_path)
    card.update(env="hopper", env_id="Hopper-v5")
    (tmp_path / "hopper" / "medium.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=r"observation/action sizes \(17, 6\) are not Hopper-v5's \(11, 3\)"):
        load_shipped_policy("hopper", "medium", policies_dir=tmp_path)
    card.update(obs_dim=11, act_dim=3)  # a card that lies about its sizes: the weights' shapes still tell
    (tmp_path / "hopper" / "medium.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match=rf"{dst}: the weights do not fit Hopper-v5 \(observation 11, action 3\).*"
                                        r"net.0.weight has shape \(8, 17\), expected \(8, 11\)"):
        load_shipped_policy("hopper", "medium", policies_dir=tmp_path)


def test_policies_dir_override(tmp_path, monkeypatch, shipped):
    monkeypatch.setenv("RLKIT2_POLICIES_DIR", str(shipped))
    assert policies_dir() == shipped
    assert shipped_roles("hopper") == ["expert", "medium", "snapshot-100", "snapshot-200"]
    assert policies_dir(tmp_path) == tmp_path
    monkeypatch.delenv("RLKIT2_POLICIES_DIR")
    assert policies_dir().parts[-3:] == ("rlkit2", "data", "policies")


def _make(tmp_path, shipped, name, *extra):
    data = tmp_path / "data"
    assert cli_main(["make", name, "--transitions", "300", "--policies-dir", str(shipped), "--data-dir", str(data),
                     "--quiet", *extra]) == 0
    return read_d4rl(data / f"{name}.hdf5")


def test_make_medium_from_shipped_policies_is_deterministic(tmp_path, shipped, monkeypatch):
    a = _make(tmp_path / "a", shipped, "hopper-v5-medium", "--seed", "3")
    b = _make(tmp_path / "b", shipped, "hopper-v5-medium", "--seed", "3")
    c = _make(tmp_path / "c", shipped, "hopper-v5-medium", "--seed", "4")
    assert len(a) == 300
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    for k in a.infos:
        np.testing.assert_array_equal(a.infos[k], b.infos[k])
    assert not np.array_equal(a.arrays["actions"], c.arrays["actions"])
    md = a.metadata
    assert md["behaviour_source"] == "shipped" and md["behaviour_agent"] == "sac"
    assert md["policy_return"] == 30.0 and md["policy_step"] == 300 and md["medium_step"] == 300  # medium's card
    assert md["ref_expert_return_v5"] == 40.0  # the shipped expert's card
    assert md["medium_policy_sha256"] == json.loads((shipped / "hopper" / "medium.json").read_text())["sha256"]
    assert md["dataset_name"] == "hopper-v5-medium" and md["reference_returns"] == "d4rl"
    # the loader finds it by its generated name
    monkeypatch.setenv("RLKIT2_DATA_DIR", str(tmp_path / "a" / "data"))
    assert len(load_offline_dataset({"id": "hopper-v5-medium"})) == 300


def test_make_medium_replay_and_medium_expert_from_shipped(tmp_path, shipped):
    assert [replay_schedule_index(t, [100, 200], 50) for t in (0, 49, 50, 99, 100, 199, 200, 299)] == \
        [-1, -1, 0, 0, 0, 0, 1, 1]
    cfg = GenerationConfig(env="hopper", transitions=300, seed=1, chunk_episodes=4, data_dir=str(tmp_path),
                           progress=False, policies_dir=str(shipped))
    path = make_dataset("hopper-v5-medium-replay", cfg)
    data = read_d4rl(path)
    assert len(data) == 300  # the env steps until medium
    md = data.metadata
    np.testing.assert_array_equal(md["replay_snapshot_steps"], [100, 200])
    assert md["replay_learning_starts"] == 50 and md["policy_return"] == 30.0
    assert data.arrays["timeouts"][-1] or data.arrays["terminals"][-1]
    # rows 0..49: the run's uniform-random warm-up (chunk 0's actor draws from default_rng(seed * 7919 + 0))
    rng = np.random.default_rng(1 * 7_919)
    warm = np.array([rng.uniform(-1, 1, 3).astype(np.float32) for _ in range(51)])
    np.testing.assert_array_equal(data.arrays["actions"][:50], warm[:50])
    assert not np.allclose(data.arrays["actions"][50], warm[50])  # then snapshot-100's explorer
    # a resumed collection (last chunk lost) follows the same schedule
    chunks = sorted((cfg.work_dir.parent / "hopper-shipped-seed1" / "collect").glob("shipped-medium-replay-*/chunk_*"))
    assert len(chunks) >= 3
    chunks[-1].unlink()
    again = read_d4rl(make_dataset("hopper-v5-medium-replay", cfg, force=True))
    for k in data.arrays:
        np.testing.assert_array_equal(again.arrays[k], data.arrays[k])
    me = read_d4rl(make_dataset("hopper-v5-medium-expert", cfg))
    med = read_d4rl(make_dataset("hopper-v5-medium", cfg))
    assert len(me) == 600
    np.testing.assert_array_equal(me.arrays["observations"][:300], med.arrays["observations"])


def test_missing_shipped_pieces(tmp_path, shipped, monkeypatch, capsys):
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(shipped, partial)
    for role in ("snapshot-100", "snapshot-200"):
        for ext in ("safetensors", "json"):
            (partial / "hopper" / f"{role}.{ext}").unlink()
    cfg = GenerationConfig(env="hopper", transitions=300, data_dir=str(tmp_path / "d"), progress=False,
                           policies_dir=str(partial))
    with pytest.raises(DataError, match="rolled out from the snapshots .* none are shipped for hopper"):
        make_dataset("hopper-v5-medium-replay", cfg)
    (partial / "hopper" / "expert.json").unlink()
    with pytest.raises(DataError, match="needs the shipped expert policy of hopper"):
        make_dataset("hopper-v5-expert", cfg)
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(DataError, match="behaviour=shipped, but no behaviour policies are shipped for hopper"):
        make_dataset("hopper-v5-medium", GenerationConfig(env="hopper", data_dir=str(tmp_path / "d"),
                                                          policies_dir=str(empty), behaviour="shipped"))
    # none shipped: make falls back to training SAC here, and says so
    import rlkit2.data.generate as generate

    def stop(cfg):
        raise RuntimeError("training would start here")

    monkeypatch.setattr(generate, "select_policies", stop)
    with pytest.raises(RuntimeError, match="training would start here"):
        make_dataset("hopper-v5-medium", GenerationConfig(env="hopper", data_dir=str(tmp_path / "d"),
                                                          policies_dir=str(empty), progress=False))
    assert f"no shipped behaviour policies for hopper in {empty / 'hopper'}: training SAC here" in \
        capsys.readouterr().err


def test_cli_policies_and_export(tmp_path, shipped, capsys):
    assert cli_main(["policies", "hopper", "--policies-dir", str(shipped)]) == 0
    out = capsys.readouterr().out
    assert "medium" in out and "snapshot-200" in out and "env steps       300" in out
    import dataclasses

    agent = tiny_sac(seed=9)
    snap = ckpt.save({"step": 700, "eval_return": 1.0, "agent": "sac", "agent_config": dataclasses.asdict(agent.config),
                      "spec": dataclasses.asdict(agent.spec), "env_id": "Hopper-v5",
                      "learner": agent.learner.state_dict()}, tmp_path / "step_000000700.pt")
    assert cli_main(["export-policy", str(snap), "--env", "hopper", "--role", "snapshot-700", "--seed", "2",
                     "--out", str(tmp_path / "p"), "--returns", "5", "1"]) == 0
    card = load_shipped_policy("hopper", "snapshot-700", policies_dir=tmp_path / "p").card
    assert card["env_steps"] == 700 and card["seed"] == 2 and card["return_mean"] == 5.0


def _package_roles():
    from rlkit2.data.names import D4RL_ENVS

    return [(env, role) for env in D4RL_ENVS for role in shipped_roles(env, policies_dir(None))]


@pytest.mark.parametrize("env,role", _package_roles())
def test_the_package_policies_verify_against_their_cards(env, role, monkeypatch):
    """Every policy shipped inside the package loads (checksum, card, shapes) and was trained by this project."""
    monkeypatch.delenv("RLKIT2_POLICIES_DIR", raising=False)
    loaded = load_shipped_policy(env, role)
    card = loaded.card
    assert card["algorithm"] == "sac" and card["eval_episodes"] == 10 and card["seed"] == 0
    assert np.isfinite(card["return_mean"]) and card["return_std"] >= 0
    assert role in ("expert", "medium") or card["env_steps"] < load_shipped_policy(env, "medium").card["env_steps"]


@pytest.mark.skipif("expert" not in shipped_roles("hopper", policies_dir(None)), reason="no hopper expert shipped")
def test_the_shipped_hopper_expert_hops_and_medium_is_about_a_third(monkeypatch):
    """The shipped expert earns what its card says over a short greedy rollout; medium about a third of it."""
    monkeypatch.delenv("RLKIT2_POLICIES_DIR", raising=False)
    expert, medium = load_shipped_policy("hopper", "expert"), load_shipped_policy("hopper", "medium")
    assert expert.card["return_mean"] >= 3000  # the bar, measured on 10 card episodes
    assert 0.25 <= medium.card["return_mean"] / expert.card["return_mean"] <= 0.45
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=123)
    total = 0.0
    for _ in range(300):
        obs, r, term, trunc, _ = env.step(expert.policy.act(obs))
        total += float(r)
        assert not term, "the shipped expert fell within 300 steps"
    assert total > 800  # ~3.3 reward per step when hopping; standing still earns ~1 per step
