"""Long soak variants (`pytest -m slow tests/robustness`): repeated kills, and a long run's disk footprint."""

from __future__ import annotations

import random

import pytest

from rlkit2 import checkpoint as ckpt
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import assert_same_tensors, offline_args
from tests.robustness.test_kill_resume import KILL_SEED, kill_at_random_step, metric_rows

pytestmark = pytest.mark.slow


def test_offline_killed_three_times_still_equals_uninterrupted(tmp_path, hopper_file):
    args = offline_args(hopper_file, "trainer.total_steps=1200", "trainer.checkpoint_every=50",
                        "trainer.eval_every=300", "trainer.log_every=50", "trainer.keep_checkpoints=2", "seed=2")
    ref = tmp_path / "ref"
    run(compose_config(args), ref)
    killed = tmp_path / "killed"
    rng = random.Random(KILL_SEED)
    done = 0
    for _ in range(3):
        targets = [s for s in range(done + 50, 1150, 50)][:8]
        done = kill_at_random_step([*args, "resume=true"], killed, [rng.choice(targets)], tmp_path)
        assert done < 1200
    run(compose_config([*args, "resume=true"]), killed)
    a, b = ckpt.latest_valid(ref / "checkpoints")[1], ckpt.latest_valid(killed / "checkpoints")[1]
    assert a["step"] == b["step"] == 1200
    assert_same_tensors(a["learner"], b["learner"], "learner")
    assert metric_rows(ref) == metric_rows(killed)


def test_long_run_keeps_a_bounded_checkpoint_dir_and_one_row_per_log_step(tmp_path, hopper_file):
    args = offline_args(hopper_file, "trainer.total_steps=5000", "trainer.checkpoint_every=100",
                        "trainer.eval_every=2500", "trainer.log_every=100", "trainer.keep_checkpoints=2")
    run(compose_config(args), tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert files == ["step_000004900.pt", "step_000004900.pt.sha256", "step_000005000.pt",
                     "step_000005000.pt.sha256"]
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if "train/critic_loss" in r]
    assert steps == list(range(100, 5001, 100))
