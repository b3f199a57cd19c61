"""A kill that lands while a checkpoint or a log line is being written never leaves something that is
picked up half-written, and the run resumes past it."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import offline_args


def _kill_child_inside_fsync(directory, step: int) -> None:
    """Fork a child that writes checkpoint `step` and SIGKILL it while the payload is written, not renamed."""
    ready = directory / "writing"
    pid = os.fork()
    if pid == 0:  # child: block inside the write, after the temp file has its bytes
        try:
            def slow_fsync(fd):
                ready.write_text("x")
                time.sleep(60)

            ckpt.os.fsync = slow_fsync
            ckpt.save({"w": torch.full((50_000,), float(step))}, ckpt.checkpoint_path(directory, step))
        finally:
            os._exit(0)
    deadline = time.time() + 30
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    ready.unlink()


def test_kill_during_checkpoint_write_leaves_previous_one_in_use(tmp_path):
    ckpt.save({"w": torch.full((50_000,), 1.0)}, ckpt.checkpoint_path(tmp_path, 1))
    _kill_child_inside_fsync(tmp_path, 2)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers and all(p.startswith(".step_000000002.pt.") for p in leftovers)  # only the hidden temp file
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1]
    path, state = ckpt.latest_valid(tmp_path)
    assert path.name == "step_000000001.pt" and float(state["w"][0]) == 1.0
    # the next successful save cleans up what the kill left behind
    ckpt.save({"w": torch.zeros(3)}, ckpt.checkpoint_path(tmp_path, 3))
    ckpt.prune(tmp_path, keep=5)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_kill_between_payload_and_checksum(tmp_path):
    """The payload is renamed into place before its checksum file: a kill between the two leaves a file without
    a sidecar, or a new payload beside an old sidecar; both are unverifiable, refused, and the older one is used."""
    p1 = ckpt.save({"w": torch.ones(4)}, ckpt.checkpoint_path(tmp_path, 1))
    p2 = ckpt.save({"w": torch.full((4,), 2.0)}, ckpt.checkpoint_path(tmp_path, 2))
    p2.with_name(p2.name + ".sha256").unlink()
    with pytest.raises(ckpt.CheckpointError, match="no checksum file"):
        ckpt.load(p2)
    assert ckpt.latest_valid(tmp_path)[0] == p1
    # a re-run rewrites step 2 with other content; killed before its sidecar: the old sidecar does not match
    ckpt.save({"w": torch.full((4,), 3.0)}, p2)
    ckpt.atomic_write_bytes(p2, _payload({"w": torch.full((4,), 5.0)}))
    with pytest.raises(ckpt.CheckpointError, match="corrupted or truncated"):
        ckpt.load(p2)
    assert ckpt.latest_valid(tmp_path)[0] == p1


def _payload(state) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_resume_after_a_torn_metrics_line_and_a_truncated_checkpoint(tmp_path, hopper_file):
    """A kill mid-line in metrics.jsonl and a truncated newest checkpoint: resume uses the older checkpoint,
    drops the torn line, and ends where an uninterrupted run ends."""
    base = offline_args(hopper_file, "trainer.checkpoint_every=20", "trainer.eval_every=1000", "trainer.log_every=10",
                        "trainer.keep_checkpoints=5", "seed=3")
    ref = tmp_path / "ref"
    run(compose_config([*base, "trainer.total_steps=60"]), ref)

    broken = tmp_path / "broken"
    run(compose_config([*base, "trainer.total_steps=40"]), broken)
    newest = ckpt.checkpoint_path(broken / "checkpoints", 40)
    newest.write_bytes(newest.read_bytes()[:1000])  # a disk that lost the end of the file
    with open(broken / "metrics.jsonl", "a") as f:
        f.write('{"step": 50, "train/critic_lo')  # the kill landed mid-line
    with pytest.warns(UserWarning, match="ignoring an incomplete last line"):
        run(compose_config([*base, "trainer.total_steps=60", "resume=true"]), broken)

    a = ckpt.latest_valid(ref / "checkpoints")[1]["learner"]["modules"]
    b = ckpt.latest_valid(broken / "checkpoints")[1]["learner"]["modules"]
    assert all(torch.equal(a[m][k], b[m][k]) for m in a for k in a[m])
    rows = read_metrics(broken)
    assert [r["step"] for r in rows if "train/critic_loss" in r] == [10, 20, 30, 40, 50, 60]
    ref_rows = [r for r in read_metrics(ref) if "train/critic_loss" in r]
    assert [r["train/critic_loss"] for r in rows if "train/critic_loss" in r] == \
        [r["train/critic_loss"] for r in ref_rows]


def test_fresh_run_in_a_used_run_dir_sets_the_old_checkpoints_aside(tmp_path, hopper_file):
    """A rerun without resume=true in a dir holding a longer run's checkpoints: before, `prune` deleted the new
    run's checkpoints (the old ones had higher steps) and a later resume picked the old run's state."""
    base = offline_args(hopper_file, "trainer.checkpoint_every=20", "trainer.eval_every=1000", "trainer.log_every=20",
                        "trainer.keep_checkpoints=1")
    run(compose_config([*base, "trainer.total_steps=60", "seed=1"]), tmp_path / "run")
    run(compose_config([*base, "trainer.total_steps=40", "seed=2"]), tmp_path / "run")
    path, state = ckpt.latest_valid(tmp_path / "run" / "checkpoints")
    assert state["step"] == 40 and state["config"]["seed"] == 2
    old = ckpt.latest_valid(tmp_path / "run" / "previous-1" / "checkpoints")[1]
    assert old["step"] == 60 and old["config"]["seed"] == 1  # nothing deleted
    # the earlier run's metrics and policy moved with its checkpoints: nothing of two runs is mixed
    assert {r["step"] for r in read_metrics(tmp_path / "run")} <= set(range(0, 41))
    assert (tmp_path / "run" / "previous-1" / "metrics.jsonl").is_file()
    assert (tmp_path / "run" / "previous-1" / "policy.pt").is_file()


def test_lm_resume_without_a_valid_checkpoint_redoes_the_logged_rows(tmp_path):
    """A language run killed before its first checkpoint: `resume=true` starts fresh and its metrics.jsonl holds
    each step once, the same rows as an uninterrupted run."""
    from rlkit2.logging import read_metrics
    from rlkit2.train import run
    from tests.helpers import compose_config
    from tests.robustness.common import lm_args

    args = lm_args("trainer.total_steps=3", "trainer.log_every=1", "trainer.eval_every=100",
                   "trainer.checkpoint_every=100", "seed=3")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run(compose_config(args), ref)
    killed.mkdir()
    # what a run killed at step 2 leaves: two logged rows, no checkpoint
    rows = [r for r in (ref / "metrics.jsonl").read_text().splitlines(keepends=True)][:2]
    (killed / "metrics.jsonl").write_text("".join(rows))
    run(compose_config(args + ["resume=true"]), killed)
    steps = [r["step"] for r in read_metrics(killed) if "train/loss" in r or "rollout/reward" in r]
    assert steps == sorted(set(steps)), steps
    assert steps == [r["step"] for r in read_metrics(ref) if "train/loss" in r or "rollout/reward" in r]
