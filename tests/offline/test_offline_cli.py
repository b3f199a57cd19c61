"""Offline agents through the real entry point (`rlkit2-train`) and the experiment presets."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlkit2.data import write_d4rl
from tests.helpers import cli, compose_config

PRESETS = sorted(p.stem for p in (Path(__file__).parents[2] / "conf" / "experiment").glob("*.yaml")
                 if p.stem.split("_")[0] in ("qsarsa", "td3", "iql", "cql") or p.stem == "main_default")


def tiny_hopper_file(path: Path, steps: int = 600, **metadata: object) -> Path:
    """A random-policy Hopper-v5 dataset in D4RL format (episodes cut at 100 steps by timeouts)."""
    env = gym.make("Hopper-v5", max_episode_steps=100)
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    obs, _ = env.reset(seed=0)
    for _ in range(steps):
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        nobs, r, term, trunc, _ = env.step(a)
        for k, v in zip(rows, (obs, a, r, term, trunc and not term), strict=True):
            rows[k].append(v)
        obs = nobs if not (term or trunc) else env.reset()[0]
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    arrays["timeouts"][-1] = not arrays["terminals"][-1]
    return write_d4rl(path, arrays, metadata={"env_id": "Hopper-v5", **metadata})


@pytest.mark.parametrize("preset", PRESETS)
def test_offline_presets_compose(preset):
    cfg = compose_config([f"experiment={preset}"])
    assert cfg.agent.name in ("qsarsa", "qsarsa_ac", "qsarsa_ac2", "td3_bc", "iql", "cql")
    # the presets name D4RL's own files; the main job its small generated dataset
    assert cfg.env.id == "hopper-v5-medium" if preset == "main_default" else "-v2" in cfg.env.id


def test_rlkit2_train_runs_qsarsa_ac2_offline_and_logs_its_losses(tmp_path):
    data = tiny_hopper_file(tmp_path / "tiny.hdf5")
    run = tmp_path / "run"
    cli(["agent=qsarsa_ac2", "env=hopper", f"env.dataset={data}", "agent.hidden=[32,32]", "agent.batch_size=32",
         "trainer.total_steps=40", "trainer.eval_every=40", "trainer.eval_episodes=1", "trainer.log_every=20",
         "trainer.checkpoint_every=40", "trainer.threads=1", "trainer.plot=false", f"hydra.run.dir={run}"],
        cwd=tmp_path)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if "train/critic_loss" in x]
    assert train and all(k in train[-1] for k in ("train/q_sarsa_loss", "train/actor_loss", "train/critic_penalty"))
    assert any("eval/return" in x for x in lines)
    assert list((run / "checkpoints").glob("step_*.pt"))


def test_an_offline_run_reports_its_score_beside_zero_action_and_the_behaviour_policy(tmp_path):
    """references.json, the side-by-side lines at the end, and the levels drawn on the learning curve."""
    data = tiny_hopper_file(tmp_path / "tiny.hdf5", policy_return=1000.0)  # as `rlkit2-data make` records
    run = tmp_path / "run"
    proc = cli(["agent=offline_bc", "env=hopper", f"env.dataset={data}", "agent.hidden=[16,16]",
                "agent.batch_size=32", "trainer.total_steps=20", "trainer.eval_every=10", "trainer.eval_episodes=2",
                "trainer.threads=1", f"hydra.run.dir={run}"], cwd=tmp_path)
    refs = json.loads((run / "references.json").read_text())
    assert set(refs) == {"zero action", "behaviour policy", "dataset episodes"}
    from rlkit2.data.scores import D4RL_REFERENCE, normalized_score

    assert refs["behaviour policy"]["level"] == pytest.approx(normalized_score(1000.0, *D4RL_REFERENCE["hopper"]))
    assert refs["zero action"]["key"] == "eval/normalized_score" and refs["zero action"]["return"] > 0
    lines = (proc.stdout + proc.stderr).splitlines()
    at = lines.index("[rlkit2] eval/normalized_score:")
    assert lines[at + 1].split()[1:3] == ["zero", "action"] and "behaviour policy" in lines[at + 2]
    assert "dataset episodes" in lines[at + 3] and "offline_bc (this run, last evaluation)" in lines[at + 4]
    from rlkit2.data import read_d4rl
    from rlkit2.data.d4rl import episode_returns

    rows = read_d4rl(data).arrays
    mean_return = float(np.mean(episode_returns(rows["rewards"], rows["terminals"], rows["timeouts"])))
    assert refs["dataset episodes"]["return"] == pytest.approx(mean_return)
    assert (run / "learning_curve.png").stat().st_size > 10_000
    job = json.loads((run / "job.json").read_text())  # a single run's job.json: no job number, no sweep dir
    assert job["mode"] == "run" and job["num"] is None and job["sweep_dir"] is None
    assert "agent=offline_bc" in job["overrides"] and job["resumed"] is False

