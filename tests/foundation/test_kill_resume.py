"""SIGKILL a training run mid-way, resume it, and get the uninterrupted run's final parameters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.logging import read_metrics
from tests.helpers import cli

ARGS = ["agent=td3", "env=hopper", "agent.hidden=[32,32]", "agent.batch_size=32", "trainer.learning_starts=200",
        "trainer.total_steps=1500", "trainer.checkpoint_every=250", "trainer.eval_every=500",
        "trainer.eval_episodes=1", "trainer.log_every=250", "trainer.progress=false", "trainer.plot=false",
        "trainer.threads=1", "trainer.keep_checkpoints=3", "seed=7"]


def _final_params(run_dir):
    path, state = ckpt.latest_valid(run_dir / "checkpoints")
    assert state["step"] == 1500, path
    return state["learner"]["modules"]


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    ref_dir, killed_dir = tmp_path / "ref", tmp_path / "killed"
    cli([*ARGS, f"hydra.run.dir={ref_dir}"], tmp_path)

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rlkit2.train", *ARGS, f"hydra.run.dir={killed_dir}"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        steps = [s for s, _ in ckpt.list_checkpoints(killed_dir / "checkpoints")]
        if steps and steps[-1] >= 500:
            break
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ckpt.list_checkpoints(killed_dir / "checkpoints")[-1][0]
    assert killed_at < 1500

    out = cli([*ARGS, f"hydra.run.dir={killed_dir}", "resume=true"], tmp_path)
    assert "resumed from" in out.stdout

    ref, resumed = _final_params(ref_dir), _final_params(killed_dir)
    for module in ref:
        for k in ref[module]:
            assert torch.equal(ref[module][k], resumed[module][k]), f"{module}.{k} differs after resume"
    # The metrics log has no duplicated or missing steps after the resume.
    ref_evals = [r["eval/return"] for r in read_metrics(ref_dir) if "eval/return" in r]
    res_evals = [r["eval/return"] for r in read_metrics(killed_dir) if "eval/return" in r]
    assert ref_evals == res_evals
