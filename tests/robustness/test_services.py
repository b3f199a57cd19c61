"""Outside services: wandb down or failing mid-run never stops training (metrics.jsonl keeps every row);
a full disk at a checkpoint stops the run with a clear error and keeps the previous checkpoint."""

from __future__ import annotations

import errno
import os
import warnings

import pytest
import torch
import wandb

from rlkit2 import checkpoint as ckpt
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import assert_same_tensors, offline_args


def _args(data, *extra):
    return offline_args(data, "trainer.total_steps=60", "trainer.checkpoint_every=20", "trainer.eval_every=30",
                        "trainer.log_every=10", "trainer.keep_checkpoints=5", "seed=5", *extra)


def _train_rows(run_dir):
    return [(r["step"], r["train/critic_loss"]) for r in read_metrics(run_dir) if "train/critic_loss" in r]


class _FlakyRun:
    """A wandb run whose server goes away after `ok` successful log calls."""

    def __init__(self, ok: int):
        self.ok, self.calls, self.finished = ok, 0, False

    def log(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.ok:
            raise wandb.errors.CommError("wandb.ai: connection reset by peer")

    def finish(self):
        self.finished = True


def test_wandb_unreachable_at_start_does_not_stop_training(tmp_path, hopper_file, monkeypatch):
    def init(*args, **kwargs):
        raise wandb.errors.CommError("Network error (ConnectionError), entering retry loop: api.wandb.ai")

    monkeypatch.setattr(wandb, "init", init)
    ref = tmp_path / "ref"
    run(compose_config(_args(hopper_file)), ref)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        final = run(compose_config(_args(hopper_file, "logger=wandb", "logger.console=false")), tmp_path / "run")
    assert any("wandb could not start" in str(w.message) for w in caught)
    assert "eval/return" in final
    assert _train_rows(tmp_path / "run") == _train_rows(ref)  # same rows, same numbers: nothing lost
    assert ckpt.latest_valid(tmp_path / "run" / "checkpoints")[1]["step"] == 60


def test_wandb_failing_mid_run_does_not_stop_training(tmp_path, hopper_file, monkeypatch):
    flaky = _FlakyRun(ok=2)
    monkeypatch.setattr(wandb, "init", lambda *a, **k: flaky)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(compose_config(_args(hopper_file, "logger=wandb", "logger.console=false")), tmp_path / "run")
    assert flaky.calls == 3  # two rows went to wandb, the third failed, and wandb was not called again
    assert any("wandb failed mid-run" in str(w.message) for w in caught)
    assert [s for s, _ in _train_rows(tmp_path / "run")] == [10, 20, 30, 40, 50, 60]
    assert [r["step"] for r in read_metrics(tmp_path / "run") if "eval/return" in r] == [30, 60]


def test_full_disk_at_a_checkpoint_keeps_the_previous_one_and_resumes(tmp_path, hopper_file, monkeypatch):
    ref = tmp_path / "ref"
    run(compose_config(_args(hopper_file)), ref)

    real_fsync, calls = ckpt.os.fsync, [0]

    def fsync(fd):
        if "/checkpoints/" not in os.readlink(f"/proc/self/fd/{fd}"):  # .hydra/ files written at start
            return real_fsync(fd)
        calls[0] += 1
        if calls[0] > 2:  # the first checkpoint (payload + checksum) fits; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(ckpt.os, "fsync", fsync)
    full = tmp_path / "full"
    with pytest.raises(ckpt.CheckpointError) as info:
        run(compose_config(_args(hopper_file)), full)
    msg = str(info.value)
    assert "No space left on device" in msg and "step_000000040.pt" in msg and "previous checkpoint" in msg
    monkeypatch.undo()
    assert [s for s, _ in ckpt.list_checkpoints(full / "checkpoints")] == [20]
    assert not [p for p in (full / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    state = ckpt.load(ckpt.checkpoint_path(full / "checkpoints", 20))
    assert state["step"] == 20

    # space freed: the run resumes from the kept checkpoint and ends exactly where the reference ends
    run(compose_config(_args(hopper_file, "resume=true")), full)
    a = ckpt.latest_valid(ref / "checkpoints")[1]
    b = ckpt.latest_valid(full / "checkpoints")[1]
    assert a["step"] == b["step"] == 60
    assert_same_tensors(a["learner"], b["learner"], "learner")
    assert _train_rows(full) == _train_rows(ref)
    assert torch.isfinite(torch.tensor([v for _, v in _train_rows(full)])).all()


class _FillingFile:
    """A metrics file on a disk that fills up: after `ok` whole rows, half of the next row lands, then ENOSPC."""

    def __init__(self, f, ok: int):
        self.f, self.ok, self.rows = f, ok, 0

    def write(self, text):
        self.rows += 1
        if self.rows > self.ok:
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(text)

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_full_disk_while_logging_metrics_stops_clearly_and_resumes(tmp_path, hopper_file, monkeypatch):
    from rlkit2.core import RLKitError
    from rlkit2.logging import JsonlLogger

    ref = tmp_path / "ref"
    run(compose_config(_args(hopper_file)), ref)

    real_init = JsonlLogger.__init__

    def init(self, *a, **k):
        real_init(self, *a, **k)
        self._f = _FillingFile(self._f, ok=3)

    monkeypatch.setattr(JsonlLogger, "__init__", init)
    full = tmp_path / "full"
    with pytest.raises(RLKitError) as info:
        run(compose_config(_args(hopper_file)), full)
    msg = str(info.value)
    assert "metrics.jsonl" in msg and "No space left on device" in msg and "resume=true" in msg
    monkeypatch.undo()
    text = (full / "metrics.jsonl").read_text()
    assert text.endswith("\n") and len(read_metrics(full)) == 3  # the torn half row was cut off

    # space freed: resume ends with the same rows as an uninterrupted run
    run(compose_config(_args(hopper_file, "resume=true")), full)
    assert _train_rows(full) == _train_rows(ref)
