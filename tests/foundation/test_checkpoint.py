from __future__ import annotations

import errno

import pytest
import torch

from rlkit2 import checkpoint as ckpt


def test_roundtrip_and_latest(tmp_path):
    for step in (10, 20, 30):
        ckpt.save({"w": torch.full((3,), float(step))}, ckpt.checkpoint_path(tmp_path, step))
    ckpt.prune(tmp_path, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [20, 30]
    path, state = ckpt.latest_valid(tmp_path)
    assert path.name.endswith("30.pt") and torch.equal(state["w"], torch.full((3,), 30.0))


def test_truncated_checkpoint_is_refused_and_skipped(tmp_path):
    ckpt.save({"w": torch.zeros(100)}, ckpt.checkpoint_path(tmp_path, 1))
    p2 = ckpt.save({"w": torch.ones(100)}, ckpt.checkpoint_path(tmp_path, 2))
    data = p2.read_bytes()
    p2.write_bytes(data[: len(data) // 2])  # a kill mid-copy / a bad disk
    with pytest.raises(ckpt.CheckpointError, match="corrupted or truncated"):
        ckpt.load(p2)
    path, state = ckpt.latest_valid(tmp_path)
    assert path.name.endswith("1.pt") and torch.equal(state["w"], torch.zeros(100))


def test_full_disk_keeps_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "c.pt"
    ckpt.save({"w": torch.zeros(2)}, target)

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.os, "fsync", full_disk)
    with pytest.raises(ckpt.CheckpointError, match="No space left"):
        ckpt.save({"w": torch.ones(2)}, target)
    monkeypatch.undo()
    assert torch.equal(ckpt.load(target)["w"], torch.zeros(2))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temp file left behind
