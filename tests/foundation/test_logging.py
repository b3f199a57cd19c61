from __future__ import annotations

import warnings

import torch

from rlkit2.logging import JsonlLogger, MultiLogger, WandbLogger, read_metrics


class _ExplodingRun:
    def log(self, *a, **k):
        raise ConnectionError("wandb server went away")

    def finish(self):
        pass


def test_jsonl_reads_tensors_and_truncates_on_resume(tmp_path):
    lg = JsonlLogger(tmp_path)
    for s in (10, 20, 30):
        lg.write({"train/loss": torch.tensor(s / 10)}, s)
    lg.truncate_after(20)
    lg.write({"train/loss": 9.0}, 30)
    lg.close()
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows] == [10, 20, 30] and rows[-1]["train/loss"] == 9.0


def test_wandb_failure_mid_run_does_not_stop_other_sinks(tmp_path):
    wb = WandbLogger.__new__(WandbLogger)
    wb.run = _ExplodingRun()
    lg = MultiLogger([wb, JsonlLogger(tmp_path)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lg.write({"train/loss": 1.0}, 1)
        lg.write({"train/loss": 2.0}, 2)
    lg.close()
    assert wb.run is None and any("wandb failed" in str(w.message) for w in caught)
    assert [r["train/loss"] for r in read_metrics(tmp_path)] == [1.0, 2.0]


def test_wandb_offline_writes_a_local_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    wb = WandbLogger("rlkit2-test", tmp_path, config={"a": 1}, group="g", name="n")
    assert wb.run is not None
    wb.write({"train/loss": 0.5}, 1)
    wb.close()
    assert list((tmp_path / "wandb").glob("offline-run-*"))
