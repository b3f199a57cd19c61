"""`rlkit2-train ... trainer.distributed=true` under torchrun (2 gloo ranks): rank 0 alone logs and
checkpoints, and a stopped data-parallel run resumes to the uninterrupted run's parameters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter

import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.logging import read_metrics
from tests.offline.test_offline_cli import tiny_hopper_file


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_port()}",
           "-m", "rlkit2.train", *args]
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_distributed_run_logs_once_and_resumes_exactly(tmp_path):
    data = tiny_hopper_file(tmp_path / "tiny.hdf5")
    common = ["agent=iql", "env=hopper", f"env.dataset={data}", "agent.hidden=[32,32]", "agent.batch_size=64",
              "trainer.distributed=true", "trainer.eval_every=100", "trainer.eval_episodes=1",
              "trainer.log_every=50", "trainer.checkpoint_every=100", "trainer.progress=false",
              "trainer.plot=false", "trainer.threads=1", "logger.console=false", "seed=1"]
    _torchrun([*common, "trainer.total_steps=300", f"hydra.run.dir={tmp_path / 'ref'}"], tmp_path)
    _torchrun([*common, "trainer.total_steps=200", f"hydra.run.dir={tmp_path / 'res'}"], tmp_path)
    _torchrun([*common, "trainer.total_steps=300", f"hydra.run.dir={tmp_path / 'res'}", "resume=true"], tmp_path)

    steps = Counter(r["step"] for r in read_metrics(tmp_path / "ref") if "train/actor_loss" in r)
    assert steps and max(steps.values()) == 1  # one writer: rank 0
    _, ref = ckpt.latest_valid(tmp_path / "ref" / "checkpoints")
    _, res = ckpt.latest_valid(tmp_path / "res" / "checkpoints")
    assert ref["step"] == res["step"] == 300 and len(ref["ranks"]) == 2
    for module, params in ref["learner"]["modules"].items():
        for k, v in params.items():
            assert torch.equal(v, res["learner"]["modules"][module][k]), f"{module}.{k}"


def test_distributed_language_learner_resumes_exactly(tmp_path):
    """The "lm" runner under torchrun: rank 0 checkpoints every rank's RNG and prompt stream."""
    common = ["experiment=rlhf_toy", "agent.prompts_per_step=8", "agent.minibatch_size=8",
              "agent.generation.max_new_tokens=4", "trainer.distributed=true", "trainer.eval_every=100",
              "trainer.eval_episodes=2", "trainer.log_every=1", "trainer.checkpoint_every=2",
              "trainer.progress=false", "trainer.plot=false", "logger.console=false", "seed=2"]
    _torchrun([*common, "trainer.total_steps=4", f"hydra.run.dir={tmp_path / 'ref'}"], tmp_path)
    _torchrun([*common, "trainer.total_steps=2", f"hydra.run.dir={tmp_path / 'res'}"], tmp_path)
    _torchrun([*common, "trainer.total_steps=4", f"hydra.run.dir={tmp_path / 'res'}", "resume=true"], tmp_path)
    steps = Counter(r["step"] for r in read_metrics(tmp_path / "ref") if "train/kl" in r)
    assert steps and max(steps.values()) == 1
    _, ref = ckpt.latest_valid(tmp_path / "ref" / "checkpoints")
    _, res = ckpt.latest_valid(tmp_path / "res" / "checkpoints")
    assert ref["step"] == res["step"] == 4 and len(ref["ranks"]) == 2
    assert ref["ranks"][0]["env"] != ref["ranks"][1]["env"]  # the ranks draw different prompts
    for k, v in ref["learner"]["policy"].items():
        assert torch.equal(v, res["learner"]["policy"][k]), k
