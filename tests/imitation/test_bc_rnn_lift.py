"""bc_rnn through the imitation runner on scripted robosuite Lift demos, exactly as bc: trains, evaluates,
checkpoints, resumes to the same weights, and writes a policy.pt that acts as the trained agent."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from rlkit2.envs.robosuite import RobosuiteEnvConfig

    from rlkit2.data.collect_demos import collect_demos

    path = tmp_path_factory.mktemp("demos") / "lift.hdf5"
    collect_demos(RobosuiteEnvConfig(horizon=80), path, 6, seed=0, progress=False)
    return path


def test_runner_trains_resumes_and_saves_a_policy(demos, tmp_path):
    from rlkit2 import checkpoint as ckpt
    from rlkit2 import load_policy
    from rlkit2.logging import JsonlLogger, read_metrics
    from rlkit2.policy import rebuild_agent
    from rlkit2.registry import EnvSpec
    from rlkit2.run.imitation import run_imitation
    from rlkit2.train import compose

    over = ["agent=bc_rnn", "env=robosuite/lift", f"env.dataset={demos}", "env.horizon=30", "env.shift.init=0.1",
            "trainer.total_steps=40", "trainer.eval_every=40", "trainer.eval_episodes=1", "trainer.log_every=20",
            "trainer.checkpoint_every=20", "trainer.progress=false", "trainer.threads=1",
            "agent.rnn_dim=32", "agent.rnn_layers=1", "agent.batch_size=16", "agent.seq_length=5",
            "agent.eval_mode=low_noise", "trainer.keep_best=eval_nominal/success_rate"]
    torch.set_num_threads(1)
    final = run_imitation(compose(over), tmp_path, JsonlLogger(tmp_path))
    assert {"eval/success_rate", "eval_nominal/success_rate"} <= set(final)
    # trainer.keep_best: the one evaluation (step 40) is the best so far, its policy saved beside policy.pt
    best = load_policy(tmp_path / "policy_best.pt", with_info=True)[1]
    assert best["step"] == final["best/step"] == 40 and final["best/value"] == final["eval_nominal/success_rate"]
    rows = read_metrics(tmp_path)
    assert any("train/bc_loss" in r for r in rows) and rows[-1]["step"] == 40
    # Resume from the step-20 checkpoint reproduces the uninterrupted weights (and the actor's stream) at step 40.
    end = ckpt.load(ckpt.checkpoint_path(tmp_path / "checkpoints", 40))["learner"]
    (tmp_path / "checkpoints" / "step_000000040.pt").unlink()
    run_imitation(compose(over + ["resume=true"]), tmp_path, JsonlLogger(tmp_path))
    again = ckpt.load(ckpt.checkpoint_path(tmp_path / "checkpoints", 40))["learner"]
    for k, v in end["modules"]["policy"].items():
        torch.testing.assert_close(again["modules"]["policy"][k], v, rtol=0, atol=0)
    torch.testing.assert_close(again["actor_generator"], end["actor_generator"])
    # policy.pt loads and acts as the agent rebuilt from the last checkpoint (same weights, same noise stream).
    policy, info = load_policy(tmp_path, with_info=True)
    assert info["agent"] == "bc_rnn"
    ref = rebuild_agent("bc_rnn", info_config(tmp_path), EnvSpec(**info["spec"]), again).policy
    obs = np.random.default_rng(0).normal(size=(12, info["spec"]["obs_dim"])).astype(np.float32)
    for actor in (policy, ref):
        actor.observe_first(obs[0])
    a = np.stack([policy.act(o) for o in obs])
    b = np.stack([ref.act(o) for o in obs])
    assert a.shape == (12, 7) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(a, b)


def info_config(run_dir):
    from rlkit2 import checkpoint as ckpt

    return ckpt.load(run_dir / "policy.pt")["agent_config"]


def test_sigkill_resume_equals_uninterrupted(demos, tmp_path):
    """A real `rlkit2-train` process SIGKILLed after a random checkpoint, resumed: the uninterrupted run's final
    learner state (weights, optimiser, replay and actor streams) and metrics rows, as bc's and poir's kill test."""
    from rlkit2 import checkpoint as ckpt
    from rlkit2.train import run
    from tests.helpers import compose_config
    from tests.robustness.common import assert_same_tensors
    from tests.robustness.test_kill_resume import kill_at_random_step, metric_rows

    args = ["agent=bc_rnn", "env=robosuite/lift", f"env.dataset={demos}", "env.horizon=20", "agent.rnn_dim=32",
            "agent.rnn_layers=1", "agent.batch_size=16", "agent.seq_length=5", "agent.eval_mode=low_noise",
            "trainer.total_steps=600", "trainer.checkpoint_every=40", "trainer.eval_every=300",
            "trainer.log_every=40", "trainer.keep_checkpoints=3", "trainer.eval_episodes=1", "trainer.progress=false",
            "trainer.plot=false", "trainer.threads=1", "logger.console=false", "seed=3"]
    ref = tmp_path / "ref"
    run(compose_config(args), ref)
    killed = tmp_path / "killed"
    at = kill_at_random_step(args, killed, [40, 80, 120], tmp_path)
    assert at < 600, "the run finished before the kill landed"
    run(compose_config([*args, "resume=true"]), killed)
    a, b = ckpt.latest_valid(ref / "checkpoints")[1], ckpt.latest_valid(killed / "checkpoints")[1]
    assert a["step"] == b["step"] == 600
    assert_same_tensors(a["learner"], b["learner"], "learner state")
    drop = ("time/", "eval/act_ms", "eval_nominal/act_ms")
    assert metric_rows(ref, drop=drop) == metric_rows(killed, drop=drop)


@pytest.mark.slow
def test_rlkit2_train_bc_rnn_lift(tmp_path):
    """`rlkit2-train experiment=bc_rnn_lift` end to end: 10 scripted demos collected by the runner, a smaller RNN
    than robomimic's (for a CPU); measured nominal success 0.9-1.0 from 500 updates on."""
    cmd = [sys.executable, "-m", "rlkit2.train", "experiment=bc_rnn_lift", "env.num_demos=10",
           f"hydra.run.dir={tmp_path}", "trainer.total_steps=1000", "trainer.eval_every=1000",
           "trainer.eval_episodes=10", "trainer.progress=false", "agent.rnn_dim=100", "agent.lr=1e-3"]
    subprocess.run(cmd, check=True, timeout=1800, env={**os.environ, "OMP_NUM_THREADS": "1"})
    from rlkit2.logging import read_metrics

    evals = [r for r in read_metrics(tmp_path) if "eval_nominal/success_rate" in r]
    assert evals and evals[-1]["eval_nominal/success_rate"] >= 0.6, evals
