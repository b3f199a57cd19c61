"""The Hydra entry point: typed configs refuse bad keys, unknown names list the valid ones, runs are seeded."""

from __future__ import annotations

import json

import pytest
import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError
from rlkit2.train import run
from tests.helpers import cli, compose_config

TINY_TD3 = ["agent=td3", "env=hopper", "agent.hidden=[32,32]", "agent.batch_size=32", "trainer.learning_starts=200",
            "trainer.eval_episodes=1", "trainer.log_every=100", "trainer.progress=false", "logger.console=false",
            "trainer.plot=false", "trainer.threads=1"]


def test_misspelt_key_is_an_error_naming_it(tmp_path):
    proc = cli(["agent=td3", "agent.actor_lrr=0.1"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "actor_lrr" in proc.stderr


def test_unknown_agent_lists_valid_ones(tmp_path):
    proc = cli(["agent=nosuchagent"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "nosuchagent" in proc.stderr and "sac" in proc.stderr and "td3" in proc.stderr


def test_negative_learning_rate_refused_before_training(tmp_path):
    cfg = compose_config([*TINY_TD3, "agent.actor_lr=-1e-3", "trainer.total_steps=300"])
    with pytest.raises(ConfigError, match="actor_lr"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_same_seed_same_numbers(tmp_path):
    rows = []
    for name in ("a", "b"):
        cfg = compose_config([*TINY_TD3, "trainer.total_steps=400", "trainer.eval_every=400", "seed=3"])
        run(cfg, tmp_path / name)
        rows.append([json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()])
        for r in rows[-1]:
            r.pop("time/steps_per_s", None)
    assert rows[0] == rows[1]
    a = ckpt.latest_valid(tmp_path / "a" / "checkpoints")[1]["learner"]["modules"]["actor"]
    b = ckpt.latest_valid(tmp_path / "b" / "checkpoints")[1]["learner"]["modules"]["actor"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device (control agents use it)")
def test_unsupported_device_is_refused_not_ignored(tmp_path):
    cfg = compose_config([*TINY_TD3, "trainer.device=cuda", "trainer.total_steps=300"])
    with pytest.raises(ConfigError, match="trainer.device=cuda"):
        run(cfg, tmp_path / "run")
