"""The one logger interface: console, JSONL (`metrics.jsonl`) and wandb, combined.

`write(metrics, step)` takes floats or tensors; tensors are read (`.item()`) here,
only when a log step happens, so the hot loop never syncs. wandb failures are
caught and reported once: metrics keep going to the other sinks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from rlkit2.data.jsonl import iter_jsonl


def to_float(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean().item())
    return float(v)


class Logger:
    """Interface: write a dict of scalars at a step; close at the end."""

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        raise NotImplementedError

    def video(self, key: str, path: str | os.PathLike[str], step: int) -> None:
        """A rollout video written at `path` (`trainer.video`); sinks that show videos take it, others ignore it."""

    def close(self) -> None:
        pass


class JsonlLogger(Logger):
    """Appends one JSON object a log step to `<run_dir>/metrics.jsonl` (flushed each line)."""

    def __init__(self, run_dir: str | os.PathLike[str], filename: str = "metrics.jsonl"):
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", buffering=1)

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        row: dict[str, Any] = {"step": int(step)}
        for k, v in metrics.items():
            x = to_float(v)
            row[k] = x if math.isfinite(x) else str(x)
        line = json.dumps(row) + "\n"
        end = self._f.tell()
        try:
            self._f.write(line)
            self._f.flush()
        except OSError as e:
            # a full (or failing) disk: cut back to the last whole row, so a resume reads a clean file, and stop
            # with the file and the cause named instead of a bare OSError from inside the training loop
            self._f = self._reopen_truncated(end)
            from rlkit2.core import RLKitError

            raise RLKitError(f"cannot append to {self.path} at step {int(step)}: {e.strerror or e} "
                             f"(metrics up to the previous row are kept; free space and rerun with resume=true)") from e

    def _reopen_truncated(self, size: int) -> Any:
        try:
            self._f.close()
        except OSError:
            pass  # the buffered tail could not be flushed either: it is dropped below
        with open(self.path, "r+b") as f:
            f.truncate(size)
        return open(self.path, "a", buffering=1)

    def truncate_after(self, step: int) -> None:
        """On resume: drop rows logged after the checkpoint we resume from (they will be redone)."""
        self._f.close()
        rows = read_metrics(self.path) if self.path.exists() else []
        kept = [r for r in rows if r.get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)
        self._f = open(self.path, "a", buffering=1)

    def close(self) -> None:
        self._f.close()


_LOG = logging.getLogger("rlkit2")


def say(message: str, *, error: bool = False) -> None:
    """One line for the user. Under `rlkit2-train` it goes through `logging` (Hydra's handlers: the console and
    the run dir's <job>.log); elsewhere (library use) it is printed."""
    if logging.getLogger().handlers:
        (_LOG.warning if error else _LOG.info)(message)
    else:
        print(message, file=sys.stderr if error else sys.stdout, flush=True)


class ConsoleLogger(Logger):
    """A compact line of selected metrics each log step (progress bars live in rlkit2.progress)."""

    def __init__(self, keys: Sequence[str] | None = None, stream: Any = None):
        self.keys = list(keys) if keys else None
        self.stream = stream  # None: `say` (console and the job's log file under rlkit2-train)

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        items = [(k, v) for k, v in metrics.items() if self.keys is None or k in self.keys]
        line = f"[step {step}] " + "  ".join(f"{k}={to_float(v):.4g}" for k, v in items)
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        else:
            say(line)


class WandbLogger(Logger):
    """wandb sink. `WANDB_MODE=offline` works without a network. Any wandb error disables it, never the run."""

    def __init__(self, project: str, run_dir: str | os.PathLike[str], config: Mapping[str, Any] | None = None,
                 group: str | None = None, name: str | None = None, mode: str | None = None,
                 entity: str | None = None, tags: Sequence[str] = ()):
        self.run: Any = None
        try:
            import wandb

            self.run = wandb.init(project=project, dir=str(run_dir), config=dict(config or {}), group=group,
                                  name=name, mode=mode, entity=entity, tags=list(tags),  # type: ignore[arg-type]
                                  reinit=True)
        except Exception as e:  # noqa: BLE001 - wandb must never stop training
            warnings.warn(f"wandb could not start ({e!r}); continuing with the other loggers", stacklevel=2)

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log({k: to_float(v) for k, v in metrics.items()}, step=int(step))
        except Exception as e:  # noqa: BLE001
            warnings.warn(f"wandb failed mid-run ({e!r}); disabling it, metrics.jsonl keeps going", stacklevel=2)
            self.run = None

    def video(self, key: str, path: str | os.PathLike[str], step: int) -> None:
        if self.run is None:
            return
        try:
            import wandb

            self.run.log({key: wandb.Video(str(path), format="mp4")}, step=int(step))
        except Exception as e:  # noqa: BLE001 - a video must never stop training
            warnings.warn(f"wandb could not take the video {path} ({e!r}); it stays in the run dir", stacklevel=2)

    def close(self) -> None:
        if self.run is not None:
            try:
                self.run.finish()
            except Exception:  # noqa: BLE001
                pass


class MultiLogger(Logger):
    def __init__(self, loggers: Sequence[Logger]):
        self.loggers = list(loggers)

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        floats = {k: to_float(v) for k, v in metrics.items()}  # one host read, shared by all sinks
        for lg in self.loggers:
            lg.write(floats, step)

    def video(self, key: str, path: str | os.PathLike[str], step: int) -> None:
        for lg in self.loggers:
            lg.video(key, path, step)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


class CallbackLogger(Logger):
    """Adapts a plain `fn(metrics: dict[str, float], step: int)` into a Logger (library use)."""

    def __init__(self, fn: Any):
        self.fn = fn

    def write(self, metrics: Mapping[str, Any], step: int) -> None:
        self.fn({k: to_float(v) for k, v in metrics.items()}, step)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a metrics.jsonl (or the one inside a run dir) into a list of dicts."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [row for _, row in iter_jsonl(p, drop_torn_tail=True)]
