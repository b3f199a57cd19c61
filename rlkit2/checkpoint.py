"""The one checkpointing path: atomic, checksummed `torch.save` of a state dict.

A checkpoint is written to a temporary file in the same directory, fsynced, then
renamed over the target, so a kill mid-write never leaves a half-written file
under the real name. A SHA-256 of the payload is stored beside it (`.sha256`) and
checked on load, so a truncated or corrupted file is refused, not half-loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from rlkit2.core import RLKitError


class CheckpointError(RLKitError):
    """A checkpoint is missing, truncated, corrupted or could not be written."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save `state` atomically with a checksum. Raises CheckpointError (previous file kept) on failure."""
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    try:
        atomic_write_bytes(path, payload)
        atomic_write_bytes(path.with_name(path.name + ".sha256"), f"{digest} {len(payload)}\n".encode())
    except OSError as e:
        raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e} "
                              "(the previous checkpoint, if any, is kept)") from e
    return path


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save`, verifying its size and checksum."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    payload = path.read_bytes()
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        parts = sidecar.read_text().split()
        if len(parts) != 2 or int(parts[1]) != len(payload) or hashlib.sha256(payload).hexdigest() != parts[0]:
            raise CheckpointError(f"checkpoint {path} is corrupted or truncated "
                                  f"(size {len(payload)} bytes does not match its checksum file {sidecar.name})")
    try:
        state: dict[str, Any] = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
        return state
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"checkpoint {path} could not be read: {e}") from e


_STEP_RE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(directory: str | os.PathLike[str], step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.pt"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted(found)


def latest_valid(directory: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `directory` that loads and verifies (corrupt ones are skipped)."""
    for _, p in reversed(list_checkpoints(directory)):
        try:
            return p, load(p)
        except CheckpointError:
            continue
    return None


def prune(directory: str | os.PathLike[str], keep: int) -> None:
    """Keep only the `keep` newest checkpoints."""
    ckpts = list_checkpoints(directory)
    for _, p in ckpts[: max(0, len(ckpts) - keep)]:
        p.unlink(missing_ok=True)
        p.with_name(p.name + ".sha256").unlink(missing_ok=True)
    if Path(directory).is_dir():  # temp files of writes a kill interrupted (never loaded; only take space)
        for tmp in Path(directory).glob(".step_*.tmp"):
            tmp.unlink(missing_ok=True)
