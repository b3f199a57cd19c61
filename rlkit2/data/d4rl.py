"""D4RL's HDF5 format, read and written with h5py (the `d4rl` package does not run on a modern stack).

Schema (docs/datasets.md): `observations (N, obs_dim)`, `actions (N, act_dim)`, `rewards (N,)`,
`terminals (N,)`, `timeouts (N,)`; optional `next_observations (N, obs_dim)`, `infos/*`, `metadata/*`.
`terminals` marks a true end (the hopper fell): the bootstrap is cut there. `timeouts` marks a
time-limit end: *not* a terminal state, but the next row starts a new episode.

`read_d4rl` validates everything and raises `DataError` naming the file, key and problem. It reads
only the row keys above, `infos/*` and `metadata/*` (any other key is left unread), each through
`rlkit2.data.hdf5.BoundedFile`: links and storage outside the file are refused, and what is read
is bounded by `RLKIT2_MAX_DATASET_BYTES` (default 16 GiB; raise it, e.g. `=64G`, for a larger
trusted file).
`write_d4rl` writes atomically (temp file in the same directory, fsync, rename), so a killed
writer never leaves a half-written file under the real name. `to_transitions` turns raw rows into
(s, a, r, s', terminal, a') transitions without ever crossing an episode boundary; `episode_returns`,
`episode_ends` and `kept_rows` are its episode helpers. `generation_metadata` reads only `metadata/*`, to tell
a file rlkit2 generated from D4RL's own.

Dataset names and their paths: `rlkit2.data.names`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlkit2.core import ConfigError, DataError
from rlkit2.data.hdf5 import BoundedFile

# metadata keys only rlkit2's generator writes: a file carrying any of them was made here, not by D4RL
GENERATION_METADATA_KEYS: tuple[str, ...] = ("generated_by", "behaviour_agent", "rlkit2_version")

REQUIRED_KEYS: tuple[str, ...] = ("observations", "actions", "rewards", "terminals", "timeouts")
FLOAT_KEYS: tuple[str, ...] = ("observations", "actions", "rewards", "next_observations")


# --------------------------------------------------------------------------- reading


@dataclasses.dataclass
class D4RLData:
    """A D4RL file's content: the row arrays (validated), `infos/*`, `metadata/*` (flattened, '/'-joined keys)."""

    arrays: dict[str, np.ndarray]
    infos: dict[str, np.ndarray]
    metadata: dict[str, Any]
    path: str = ""

    def __len__(self) -> int:
        return len(self.arrays["observations"])


def _read_rows(h: BoundedFile) -> dict[str, np.ndarray]:
    """The row datasets the loader uses; any other top-level key is left unread."""
    found: dict[str, h5py.Dataset] = {}
    for key in (*REQUIRED_KEYS, "next_observations"):
        item = h.child(h.file, key)
        if isinstance(item, h5py.Group):
            raise DataError(f"{h.path}: '{key}' is a group, expected a dataset")
        if item is not None:
            found[key] = item
    lengths = {key: d.shape[0] for key, d in found.items() if d.shape}
    if "observations" in lengths:  # declared lengths first: one huge key among small ones costs nothing
        _check_lengths(lengths, h.path)
    return {key: h.read(d) for key, d in found.items()}


def _check_lengths(lengths: Mapping[str, int], source: str) -> None:
    n = lengths["observations"]
    for key, rows in lengths.items():
        if rows != n:
            raise DataError(f"{source}: '{key}' has {rows} rows but 'observations' has {n}; lengths must match")


def _read_infos(h: BoundedFile, n: int) -> dict[str, np.ndarray]:
    """`infos/*`, each checked to have `n` rows before it is read."""
    group = h.child(h.file, "infos")
    if not isinstance(group, h5py.Group):
        return {}
    infos: dict[str, np.ndarray] = {}
    for key, dset in h.walk(group):
        if not dset.shape or dset.shape[0] != n:
            raise DataError(f"{h.path}: 'infos/{key}' has shape {dset.shape}, expected {n} rows")
        infos[key] = h.read(dset)
    return infos


def _read_metadata(h: BoundedFile) -> dict[str, Any]:
    group = h.child(h.file, "metadata")
    return {key: _from_h5(h.read(dset)) for key, dset in h.walk(group)} if isinstance(group, h5py.Group) else {}


def _from_h5(value: Any) -> Any:
    """HDF5 metadata values back to Python: bytes -> str, 0-d numbers -> int/float/bool."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in value.ravel()],
                        dtype=object).reshape(value.shape)
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_d4rl(
    path: str | os.PathLike[str],
    *,
    action_low: np.ndarray | float | None = None,
    action_high: np.ndarray | float | None = None,
    action_tolerance: float = 1e-4,
) -> D4RLData:
    """Read and validate a D4RL HDF5 file. Raises DataError (naming file and key) on any problem.

    `action_low/high` (the env's action space) turn on the bounds check; actions beyond them by
    more than `action_tolerance` are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such dataset file")
    try:
        with h5py.File(path, "r") as f:
            h = BoundedFile(f, path)
            arrays = validate_arrays(_read_rows(h), source=str(path), action_low=action_low,
                                     action_high=action_high, action_tolerance=action_tolerance)
            infos = _read_infos(h, len(arrays["observations"]))
            metadata = _read_metadata(h)
    except (DataError, ConfigError):  # ValueErrors of our own, already clear
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e
    return D4RLData(arrays, infos, metadata, str(path))


def generation_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The rlkit2 generation keys (GENERATION_METADATA_KEYS, plus the settings) of a file's `metadata/*`;
    empty for a file rlkit2 did not generate. Reads the metadata group only."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            md = _read_metadata(BoundedFile(f, path))
    except (DataError, ConfigError):
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e
    if not any(k in md for k in GENERATION_METADATA_KEYS):
        return {}
    return md


def validate_arrays(
    arrays: Mapping[str, Any],
    *,
    source: str = "dataset",
    action_low: np.ndarray | float | None = None,
    action_high: np.ndarray | float | None = None,
    action_tolerance: float = 1e-4,
) -> dict[str, np.ndarray]:
    """Check keys, ranks, lengths, dtypes, finiteness, flags and action bounds; return normalised copies.

    Floats become float32, flags become bool. `rewards`, `terminals`, `timeouts` may be (N,) or (N, 1).
    """
    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        raise DataError(f"{source}: missing key(s) {', '.join(repr(k) for k in missing)} "
                        f"(have {sorted(arrays)}; a D4RL file needs {', '.join(REQUIRED_KEYS)})")
    out: dict[str, np.ndarray] = {}
    for key in (*REQUIRED_KEYS, "next_observations"):
        if key not in arrays:
            continue
        v = np.asarray(arrays[key])
        if v.dtype.kind not in "biuf":
            raise DataError(f"{source}: '{key}' has dtype {v.dtype}, expected a numeric array")
        if key in ("observations", "actions", "next_observations"):
            if v.ndim != 2:
                raise DataError(f"{source}: '{key}' has shape {v.shape} (rank {v.ndim}), expected (N, dim) (rank 2)")
            if v.shape[1] == 0:
                raise DataError(f"{source}: '{key}' has shape {v.shape}: zero-width rows")
        else:
            if v.ndim == 2 and v.shape[1] == 1:
                v = v[:, 0]
            if v.ndim != 1:
                raise DataError(f"{source}: '{key}' has shape {v.shape} (rank {v.ndim}), expected (N,) (rank 1)")
        out[key] = v
    n = len(out["observations"])
    if n == 0:
        raise DataError(f"{source}: empty dataset (0 rows in 'observations')")
    _check_lengths({key: len(v) for key, v in out.items()}, source)
    if "next_observations" in out and out["next_observations"].shape[1] != out["observations"].shape[1]:
        raise DataError(f"{source}: 'next_observations' has width {out['next_observations'].shape[1]}, "
                        f"'observations' has {out['observations'].shape[1]}")
    for key in FLOAT_KEYS:
        if key not in out:
            continue
        v = out[key].astype(np.float32, copy=False)
        finite = np.isfinite(v)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            raise DataError(f"{source}: '{key}' has {int((~finite).sum())} NaN/inf value(s), first at index "
                            f"{tuple(int(i) for i in bad)}")
        out[key] = v
    for key in ("terminals", "timeouts"):
        v = out[key]
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise DataError(f"{source}: '{key}' has NaN/inf values; expected 0/1 flags")
        if not np.isin(v, (0, 1)).all():
            raise DataError(f"{source}: '{key}' has values other than 0/1 (e.g. {v[~np.isin(v, (0, 1))][0]}); "
                            "expected boolean flags")
        out[key] = v.astype(bool)
    if action_low is not None or action_high is not None:
        acts = out["actions"]
        lo = np.broadcast_to(np.asarray(-np.inf if action_low is None else action_low, np.float64), acts.shape[1:])
        hi = np.broadcast_to(np.asarray(np.inf if action_high is None else action_high, np.float64), acts.shape[1:])
        outside = (acts < lo - action_tolerance) | (acts > hi + action_tolerance)
        if outside.any():
            i, j = (int(x) for x in np.argwhere(outside)[0])
            raise DataError(f"{source}: 'actions' has {int(outside.any(axis=1).sum())} row(s) outside the action space "
                            f"[{lo.min():g}, {hi.max():g}]; first: actions[{i}, {j}] = {acts[i, j]:g}")
    return out


# --------------------------------------------------------------------------- writing


def _to_h5(value: Any) -> Any:
    arr = np.asarray(value)
    if arr.dtype.kind in "OU":  # lists of strings
        return np.array([str(v).encode("utf-8") for v in arr.ravel()], dtype=object).reshape(arr.shape)
    return arr


def _write_mapping(group: h5py.Group, mapping: Mapping[str, Any], what: str) -> None:
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            _write_mapping(group.require_group(key), value, what)
            continue
        if value is None:
            raise DataError(f"cannot write {what} '{key}': value is None")
        if isinstance(value, str):
            group.create_dataset(key, data=value, dtype=h5py.string_dtype("utf-8"))
        elif np.asarray(value).dtype.kind in "OU":
            group.create_dataset(key, data=_to_h5(value), dtype=h5py.string_dtype("utf-8"))
        else:
            group.create_dataset(key, data=_to_h5(value))


def write_d4rl(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray],
    *,
    infos: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping[str, Any] | None = None,
    compression: str | None = None,
) -> Path:
    """Validate and write a D4RL file atomically. `metadata` values: str, numbers, arrays, nested dicts.

    Keys with '/' (as `read_d4rl` returns them) become nested groups, so `read_d4rl(write_d4rl(x))`
    gives back the same arrays, infos and metadata.
    """
    path = Path(path)
    clean = validate_arrays(arrays, source=str(path))
    n = len(clean["observations"])
    # Written in the canonical dtypes (float32 rows, bool flags), which is what read_d4rl returns.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            for key, v in clean.items():
                f.create_dataset(key, data=v, compression=compression)
            if infos:
                g = f.create_group("infos")
                for key, v in infos.items():
                    v = np.asarray(v)
                    if v.ndim == 0 or len(v) != n:
                        raise DataError(f"{path}: 'infos/{key}' has shape {v.shape}, expected {n} rows")
                    g.create_dataset(key, data=v, compression=compression)
            if metadata:
                _write_mapping(f.create_group("metadata"), metadata, "metadata")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; a dataset is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# --------------------------------------------------------------------------- transitions


def episode_ends(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Bool mask of rows that end an episode (terminal or timeout; the last row always does)."""
    ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
    if len(ends):
        ends = ends.copy()
        ends[-1] = True
    return ends


def episode_returns(rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Undiscounted return of each episode (the final, possibly cut, episode included)."""
    ends = episode_ends(terminals, timeouts)
    idx = np.flatnonzero(ends)
    csum = np.concatenate([[0.0], np.cumsum(rewards, dtype=np.float64)])
    starts = np.concatenate([[0], idx[:-1] + 1])
    return csum[idx + 1] - csum[starts]


def kept_rows(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Bool mask of the rows `to_transitions` keeps (use it to align `infos/*` with the transitions)."""
    n = len(arrays["observations"])
    if "next_observations" in arrays:
        return np.ones(n, bool)
    term = np.asarray(arrays["terminals"], bool)
    return ~episode_ends(term, arrays["timeouts"]) | term


def to_transitions(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validated D4RL rows -> transitions for a replay (all float32).

    Returns observations, actions, rewards, next_observations, terminals, timeouts, next_actions,
    next_action_valid.

    With `next_observations` present every row is a transition. Without it (like D4RL's
    `qlearning_dataset`) s' = observations[i+1], and a row whose timeouts[i] is set is dropped (its
    successor is a reset), as is the file's last row (no successor) unless it is terminal. A terminal
    row keeps s' = observations[i+1] only if that row belongs to the same episode, which it never
    does: so s' is set to s itself - never bootstrapped (terminal = 1), and never a reset state.

    `next_actions[i]` is the dataset's a' (the action taken at s'), for SARSA-style targets. It is
    known only when row i+1 continues the same episode; elsewhere (terminal, timeout, last row) it
    is set to actions[i] and `next_action_valid[i] = 0`, so a SARSA learner can mask those targets
    (at a terminal the target does not bootstrap anyway).
    """
    obs, act = arrays["observations"], arrays["actions"]
    rew = np.asarray(arrays["rewards"], np.float32)
    term = np.asarray(arrays["terminals"], bool)
    tout = np.asarray(arrays["timeouts"], bool)
    ends = episode_ends(term, tout)
    continues = ~ends  # row i+1 is the same episode's next step
    next_act = act.copy()
    next_act[:-1][continues[:-1]] = act[1:][continues[:-1]]
    keep = kept_rows(arrays)
    if "next_observations" in arrays:
        next_obs = np.asarray(arrays["next_observations"], np.float32)
    else:
        next_obs = np.empty_like(obs)
        next_obs[:-1] = obs[1:]
        next_obs[ends] = obs[ends]  # terminal rows (timeouts and the last row are dropped by `keep`)
    out = {
        "observations": obs[keep],
        "actions": act[keep],
        "rewards": rew[keep],
        "next_observations": next_obs[keep],
        "terminals": term[keep].astype(np.float32),
        "timeouts": (tout & ~term)[keep].astype(np.float32),
        "next_actions": next_act[keep],
        "next_action_valid": continues[keep].astype(np.float32),
    }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
