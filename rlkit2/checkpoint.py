"""The one checkpointing path: atomic, checksummed, weights-only files.

A checkpoint is written to a temporary file in the same directory, fsynced, then renamed over the target,
so a kill mid-write never leaves a half-written file under the real name. A SHA-256 of the payload is
stored beside it (`.sha256`, "<hex digest> <size>") and checked on load: a truncated, corrupted or
unverifiable file (checksum file missing or malformed) is refused, never half-loaded or silently trusted.

Loading never runs code: files are read with `torch.load(weights_only=True)`, which accepts tensors and
plain containers (dict, list, tuple, str, int, float, bool, None) only. NumPy arrays (replay contents, RNG
states) are stored as tensors under a small tag and turned back into arrays on load. A file pickled with
arbitrary objects (the format of rlkit2 before 0.2) is refused with a message saying how to convert it;
`trust=True` loads it with full unpickling, which runs whatever code the file carries: only for files you
made yourself (docs/security.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlkit2.core import RLKitError


class CheckpointError(RLKitError):
    """A checkpoint is missing, truncated, corrupted, unverifiable or could not be written."""


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


def update_json(path: str | os.PathLike[str], update: Callable[[Any], Any], default: Any = None) -> Any:
    """Read the JSON file at `path` (`default` when absent), write back `update(data)` atomically; returns it.

    Under an exclusive lock on `<path>.lock`: processes sharing one results file (seeds or grid sittings run side
    by side) each re-read it inside the lock, so none overwrites rows another wrote since it last looked.
    """
    import fcntl
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.is_file() else default
        data = update(data)
        atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())
    return data


# --------------------------------------------------------------------------- weights-only encoding

_ARRAY_TAG = "__rlkit2_ndarray__"
# dtypes torch holds natively; any other plain dtype (uint32: NumPy's legacy RNG key) travels as raw bytes
_NATIVE = {np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
                                 np.float16, np.float32, np.float64)}


def _encode(obj: Any, where: str = "state") -> Any:
    """`obj` with every NumPy array / scalar replaced by what a weights-only load accepts."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or obj.dtype.kind in "USV":
            raise CheckpointError(f"cannot save {where}: a NumPy array of dtype {obj.dtype} (objects or "
                                  "strings) is not weights-only data")
        arr = np.ascontiguousarray(obj)
        if arr.dtype in _NATIVE:
            return {_ARRAY_TAG: torch.from_numpy(arr.copy())}
        raw = torch.from_numpy(arr.reshape(-1).view(np.uint8).copy())
        return {_ARRAY_TAG: raw, "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _encode(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        out = [_encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return out if isinstance(obj, list) else tuple(out)
    if not isinstance(obj, _PLAIN):
        raise CheckpointError(f"cannot save {where}: a {type(obj).__name__} is not weights-only data (tensors, "
                              "arrays, numbers, strings, None and lists/tuples/dicts of them); store its state_dict()")
    return obj


_PLAIN = (torch.Tensor, str, int, float, bool, type(None), bytes, torch.dtype, torch.device, torch.Size)


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if _ARRAY_TAG in obj:
            t = obj[_ARRAY_TAG]
            if "dtype" in obj:
                return np.frombuffer(t.cpu().numpy().tobytes(), np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
            return t.cpu().numpy()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_decode(v) for v in obj)
    return obj


def to_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(_encode(state), buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- save / load


def save(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save `state` atomically with a checksum. Raises CheckpointError (previous file kept) on failure."""
    path = Path(path)
    payload = to_bytes(state)
    digest = hashlib.sha256(payload).hexdigest()
    try:
        atomic_write_bytes(path, payload)
        atomic_write_bytes(checksum_path(path), f"{digest} {len(payload)}\n".encode())
    except OSError as e:
        raise CheckpointError(f"could not write checkpoint {path}: {e.strerror or e} "
                              "(the previous checkpoint, if any, is kept)") from e
    return path


def checksum_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".sha256")


def verify(path: Path, payload: bytes) -> None:
    """Raise CheckpointError unless `path`'s checksum file exists, is well formed and matches `payload`."""
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        raise CheckpointError(f"{path} has no checksum file ({sidecar.name}), so it cannot be verified; "
                              "if you trust the file, write one with `python -m rlkit2.checkpoint rehash PATH`")
    try:
        digest, size = sidecar.read_text(encoding="ascii").split()
        expected = int(size)
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: its checksum file {sidecar.name} is malformed "
                              "(expected '<sha256 hex> <size>')") from None
    if expected != len(payload) or hashlib.sha256(payload).hexdigest() != digest.lower():
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated "
                              f"(size {len(payload)} bytes does not match its checksum file {sidecar.name})")


def _legacy_message(path: Path, error: Exception) -> str:
    return (f"{path} holds pickled Python objects (the format of rlkit2 before 0.2, or a foreign file), and "
            "loading it would run code stored in it, so it is refused. If you made the file yourself, convert "
            f"it once: `python -m rlkit2.checkpoint convert {path}` (or pass trust=True / trust_pickle=true). "
            f"Detail: {str(error).strip().splitlines()[0]}")


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu", *,
         trust: bool = False) -> dict[str, Any]:
    """Load a checkpoint written by `save`, verifying its checksum, without running code from the file.

    `trust=True` unpickles arbitrary objects (older rlkit2 files): that runs any code the file carries.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    payload = path.read_bytes()
    if checksum_path(path).is_file() or not trust:
        try:
            verify(path, payload)
        except CheckpointError:
            if checksum_path(path).is_file():
                raise
            # no checksum file: an older pickled file says how to convert it; a weights-only one stays refused
            _unpickle(path, payload, map_location, trust=False)
            raise
    else:
        warnings.warn(f"{path} has no checksum file; loading it anyway (trust=True)", stacklevel=2)
    return _unpickle(path, payload, map_location, trust)


def _unpickle(path: Path, payload: bytes, map_location: Any, trust: bool) -> dict[str, Any]:
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust:
            raise CheckpointError(_legacy_message(path, e)) from None
        warnings.warn(f"loading {path} with full unpickling (trust=True): it can run code", stacklevel=3)
        try:
            state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
        except Exception as e2:  # noqa: BLE001 - any unpickling failure means a bad file
            raise CheckpointError(f"checkpoint {path} could not be read: {e2}") from e2
    except Exception as e:  # noqa: BLE001 - a truncated/foreign zip, a bad tensor record, ...
        raise CheckpointError(f"checkpoint {path} could not be read: {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    decoded: dict[str, Any] = _decode(state)
    return decoded


# --------------------------------------------------------------------------- checkpoint directories

_STEP_RE = re.compile(r"^step_(\d+)\.pt$")
UNLOADABLE_DIR = "unloadable"


def checkpoint_path(directory: str | os.PathLike[str], step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.pt"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted(found)


def _say(msg: str) -> None:
    print(f"[rlkit2] {msg}", file=sys.stderr, flush=True)


def move_aside(path: Path) -> Path:
    """Move an unloadable checkpoint (and its checksum file) into `<dir>/unloadable/`: kept for inspection,
    out of the resume and prune order."""
    dest_dir = path.parent / UNLOADABLE_DIR
    dest_dir.mkdir(exist_ok=True)
    dest = dest_dir / path.name
    k = 1
    while dest.exists():
        dest, k = dest_dir / f"{path.name}.{k}", k + 1
    shutil.move(str(path), dest)
    if checksum_path(path).exists():
        shutil.move(str(checksum_path(path)), dest.with_name(dest.name + ".sha256"))
    return dest


def latest_valid(directory: str | os.PathLike[str], *, trust: bool = False, quarantine: bool = False,
                 say: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `directory` that verifies and loads; each newer one skipped is reported
    (which and why) through `say`. `quarantine=True` (a run's own checkpoint dir) also moves the skipped
    ones aside, so `prune` never keeps them in place of good ones."""
    for _, p in reversed(list_checkpoints(directory)):
        try:
            return p, load(p, trust=trust)
        except CheckpointError as e:
            where = ""
            if quarantine:
                where = f"; moved to {move_aside(p)}"
            if say is not None:
                say(f"skipped checkpoint {p.name}: {e}{where}")
    return None


def resume_state(source: Path, *, trust: bool = False, own_dir: Path | None = None,
                 say: Callable[[str], None] = _say) -> tuple[Path, dict[str, Any]] | None:
    """What every runner resumes from: `source` is one checkpoint file (loaded or refused) or a checkpoint
    directory (its newest good checkpoint; newer bad ones are reported and, in the run's own dir
    `own_dir`, moved aside)."""
    if source.is_file():
        return source, load(source, trust=trust)
    quarantine = own_dir is not None and source.resolve() == Path(own_dir).resolve()
    return latest_valid(source, trust=trust, quarantine=quarantine, say=say)


def prune(directory: str | os.PathLike[str], keep: int) -> None:
    """Keep only the `keep` newest checkpoints."""
    ckpts = list_checkpoints(directory)
    for _, p in ckpts[: max(0, len(ckpts) - keep)]:
        p.unlink(missing_ok=True)
        checksum_path(p).unlink(missing_ok=True)
    if Path(directory).is_dir():  # temp files of writes a kill interrupted (never loaded; only take space)
        for tmp in Path(directory).glob(".step_*.tmp"):
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- conversion of older files


def convert(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Rewrite an older (pickled) rlkit2 checkpoint in the weights-only format. This unpickles it once,
    which runs any code it carries: convert only files you made yourself."""
    src = Path(path)
    state = load(src, trust=True)
    return save(_plain(state), out or src)


def _plain(obj: Any) -> Any:
    """Older checkpoints held a few non-plain objects (OmegaConf containers, dataclasses): make them plain."""
    import dataclasses

    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(obj, DictConfig | ListConfig):
        return OmegaConf.to_container(obj, resolve=True)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        out = [_plain(v) for v in obj]
        return out if isinstance(obj, list) else tuple(out)
    return obj


def rehash(path: str | os.PathLike[str]) -> Path:
    """Write the checksum file of an existing checkpoint (after you have checked where it came from)."""
    p = Path(path)
    payload = p.read_bytes()
    atomic_write_bytes(checksum_path(p), f"{hashlib.sha256(payload).hexdigest()} {len(payload)}\n".encode())
    return checksum_path(p)


def main(argv: list[str] | None = None) -> int:
    """`python -m rlkit2.checkpoint convert PATH...` | `rehash PATH...` (a checkpoints dir converts every file)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m rlkit2.checkpoint", description=main.__doc__)
    ap.add_argument("command", choices=["convert", "rehash"])
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args(argv)
    try:
        for raw in args.paths:
            p = Path(raw)
            files = [f for _, f in list_checkpoints(p)] if p.is_dir() else [p]
            for f in files:
                done = convert(f) if args.command == "convert" else rehash(f)
                print(f"{args.command}: {f} -> {done}")
    except (RLKitError, OSError) as e:
        print(f"rlkit2.checkpoint: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
