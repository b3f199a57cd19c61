"""One writer per run dir, and a fresh run that never mixes with an earlier one's files.

`exclusive(run_dir)` holds an OS file lock (`fcntl.flock` on `<run_dir>/.rlkit2.lock`) for the whole run; the
kernel releases it on any exit, kill -9 included, so a stale lock never blocks. A second process that tries
to write into the same dir fails at start with an error naming the dir and the holder. Under torchrun only
the launcher's rank 0 (env RANK unset or 0) takes it: the other ranks write nothing there.

`set_aside_earlier_run(run_dir)`: a run started without `resume` in a dir an earlier run used moves that
run's outputs (checkpoints, metrics, policy, plots) together into `previous-<k>/`, so a later resume never
picks the earlier run's steps, `prune` never deletes the new run's checkpoints to keep the old ones, and
metrics.jsonl never mixes two runs. Nothing is deleted.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from rlkit2.core import ConfigError

LOCK_FILE = ".rlkit2.lock"
REFERENCES_FILE = "references.json"  # offline runs: the zero-action and behaviour-policy levels
BEST_FILE = "best.json"  # trainer.keep_best: which evaluation the best policy (policy_best.pt / policy_best/) is
# everything a run writes into its dir besides Hydra's own .hydra/ and log
RUN_OUTPUTS = ("checkpoints", "metrics.jsonl", "policy.pt", "policy.pt.sha256", "policy_best.pt",
               "policy_best.pt.sha256", "policy_best", BEST_FILE, "learning_curve.png", REFERENCES_FILE, "job.json")


def resuming(resume: str) -> bool:
    """Whether the `resume=` setting asks to continue (a path, or true/auto) rather than start fresh."""
    return str(resume or "").strip().lower() not in ("", "false", "none", "0")


def _launcher_rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


@contextlib.contextmanager
def exclusive(run_dir: str | os.PathLike[str]) -> Iterator[None]:
    """Hold `run_dir`'s writer lock for the duration of the block (no-op on ranks other than 0)."""
    if _launcher_rank() != 0:
        yield
        return
    import fcntl

    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown process"
            raise ConfigError(f"run dir {d} is in use by another rlkit2 run ({holder}); wait for it to end, "
                              "or choose another hydra.run.dir") from None
        stamp = f"pid {os.getpid()} on {socket.gethostname()}, started {datetime.datetime.now():%Y-%m-%d %H:%M:%S}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, stamp.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def is_unused(run_dir: str | os.PathLike[str]) -> bool:
    """No run has written here yet (missing, or holding only Hydra's empty job log)."""
    d = Path(run_dir)
    return not d.exists() or all(p.suffix == ".log" and p.stat().st_size == 0 for p in d.iterdir())


def remove_if_unproductive(run_dir: str | os.PathLike[str]) -> None:
    """After a run that failed before producing anything (no checkpoint, no metric): remove what it created,
    so later plot and sweep globs do not pick up an empty run."""
    import shutil

    d = Path(run_dir)
    metrics = d / "metrics.jsonl"
    if _launcher_rank() != 0 or (d / "checkpoints").exists() or (metrics.exists() and metrics.stat().st_size):
        return
    shutil.rmtree(d, ignore_errors=True)


def has_earlier_run(run_dir: Path) -> bool:
    d = Path(run_dir)
    metrics = d / "metrics.jsonl"
    return ((d / "checkpoints").is_dir() and any((d / "checkpoints").iterdir())) or (d / "policy.pt").exists() \
        or (metrics.is_file() and metrics.stat().st_size > 0)


def set_aside_earlier_run(run_dir: str | os.PathLike[str]) -> Path | None:
    """Move an earlier run's outputs in `run_dir` into `previous-<k>/` together; returns where (None: none)."""
    d = Path(run_dir)
    if _launcher_rank() != 0 or not has_earlier_run(d):
        return None
    k = 1
    while (aside := d / f"previous-{k}").exists():
        k += 1
    aside.mkdir()
    moved = []
    for name in RUN_OUTPUTS:
        if (d / name).exists():
            (d / name).rename(aside / name)
            moved.append(name)
    print(f"[rlkit2] {d} held an earlier run and resume is off: moved its {', '.join(moved)} to {aside}",
          flush=True)
    return aside
