"""Minari datasets on disk -> the same rows as a D4RL file (never downloading).

Reading goes through the installed `minari` package (`minari.load_dataset(id, download=False)`), which
looks under `$MINARI_DATASETS_PATH` (default ~/.minari/datasets). Minari stores episodes: an episode of
T steps has T+1 observations (the last is the final s'), T actions, rewards, terminations and
truncations. We turn them into D4RL rows with `next_observations` (so no row is dropped); an episode
whose last step carries neither flag (cut by the collector) is marked as a timeout, so nothing crosses
its boundary.

Minari reads the files itself, so `read_minari` checks them first: `metadata.json` is parsed with
rlkit2's bounded JSON reader, and every dataset minari will read from `main_data.hdf5` (each
episode's rows and `infos/*`) goes through `rlkit2.data.hdf5.BoundedFile.check`: links and storage
outside the file are refused, and the total is bounded by `RLKIT2_MAX_DATASET_BYTES` (default
16 GiB; raise it, e.g. `=64G`, for a larger trusted dataset).

`write_minari` writes Minari 0.5's hdf5 on-disk layout with h5py and json only, because Minari's own
writer (`DataCollector`) needs `minari[create]` (jax, numpy 2), which cannot be installed beside
robosuite here:

    <root>/<namespace>/<name>-v<k>/data/metadata.json
    <root>/<namespace>/<name>-v<k>/data/main_data.hdf5   (groups episode_<i> with observations,
                                                           actions, rewards, terminations, truncations)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlkit2.core import ConfigError, DataError
from rlkit2.data.d4rl import D4RLData, validate_arrays
from rlkit2.data.hdf5 import BoundedFile
from rlkit2.data.jsonl import read_json

MINARI_FORMAT_VERSION = "0.5.0"  # the on-disk layout version write_minari produces
_EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")  # + infos/*: what minari reads


def _import_minari() -> Any:
    try:
        import minari
    except ImportError as e:  # pragma: no cover - minari is an optional extra
        raise DataError("reading Minari datasets needs the `minari` package: pip install 'rlkit2[minari]'") from e
    return minari


def minari_root() -> Path:
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")


def read_minari(dataset_id: str) -> D4RLData:
    """Load Minari dataset `dataset_id` (e.g. `mujoco/hopper/medium-v0`) from disk into D4RL rows.

    Metadata passed through: dataset_id, env_id (from the stored env spec), ref_min_score /
    ref_max_score when the dataset has them, minari_version, and any other scalar entries.
    """
    minari = _import_minari()
    data_dir = minari_root() / dataset_id / "data"
    if (data_dir / "metadata.json").is_file():
        read_json(data_dir / "metadata.json")  # refuses what would sink minari's own json.load
    try:
        ds = minari.load_dataset(dataset_id, download=False)
    except FileNotFoundError as e:
        raise DataError(f"Minari dataset '{dataset_id}' not found under {minari_root() / dataset_id} "
                        "(MINARI_DATASETS_PATH). rlkit2 never downloads: copy the dataset there "
                        "(`minari download` on a machine with network access) and retry.") from e
    except (ValueError, KeyError, AssertionError, OSError, json.JSONDecodeError) as e:
        raise DataError(f"Minari dataset '{dataset_id}' at {minari_root() / dataset_id} is malformed: {e!r}") from e

    import gymnasium as gym

    obs_space, act_space = ds.observation_space, ds.action_space
    if not isinstance(obs_space, gym.spaces.Box) or not isinstance(act_space, gym.spaces.Box):
        raise DataError(f"Minari dataset '{dataset_id}': only Box observation/action spaces are supported "
                        f"(got {type(obs_space).__name__} / {type(act_space).__name__})")
    if (data_dir / "main_data.hdf5").is_file():
        check_episodes_file(data_dir / "main_data.hdf5")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("observations", "next_observations", "actions", "rewards",
                                           "terminals", "timeouts")}
    try:
        for ep in ds.iterate_episodes():
            t = len(ep.rewards)
            obs = np.asarray(ep.observations)
            if obs.ndim != 2 or len(obs) != t + 1:
                raise DataError(f"Minari dataset '{dataset_id}' episode {ep.id}: observations have shape {obs.shape}, "
                                f"expected ({t + 1}, obs_dim) for {t} steps")
            if t == 0:
                continue
            term = np.asarray(ep.terminations, bool).reshape(-1)
            trunc = np.asarray(ep.truncations, bool).reshape(-1).copy()
            if len(term) != t or len(trunc) != t:
                raise DataError(f"Minari dataset '{dataset_id}' episode {ep.id}: {len(term)} terminations and "
                                f"{len(trunc)} truncations for {t} rewards; expected one of each a step")
            if not (term[-1] or trunc[-1]):
                trunc[-1] = True  # an episode cut by the collector ends here all the same
            parts["observations"].append(obs[:-1])
            parts["next_observations"].append(obs[1:])
            parts["actions"].append(np.asarray(ep.actions).reshape(t, -1))
            parts["rewards"].append(np.asarray(ep.rewards).reshape(-1))
            parts["terminals"].append(term)
            parts["timeouts"].append(trunc & ~term)
    except DataError:
        raise
    except (ValueError, KeyError, AssertionError, OSError, TypeError, IndexError, MemoryError) as e:
        raise DataError(f"Minari dataset '{dataset_id}' could not be read: {e!r}") from e
    if not parts["observations"]:
        raise DataError(f"Minari dataset '{dataset_id}' is empty (no steps)")
    try:
        rows = {k: np.concatenate(v) for k, v in parts.items()}
    except ValueError as e:
        raise DataError(f"Minari dataset '{dataset_id}': episodes have inconsistent shapes: {e}") from e
    arrays = validate_arrays(rows, source=f"minari:{dataset_id}", action_low=act_space.low, action_high=act_space.high)

    raw = ds.storage.metadata
    metadata: dict[str, Any] = {"dataset_id": dataset_id, "source_format": "minari"}
    if ds.env_spec is not None:
        metadata["env_id"] = ds.env_spec.id
    for k, v in raw.items():
        if isinstance(v, str | int | float | bool) and k not in ("env_spec", "eval_env_spec"):
            metadata[k] = v
    return D4RLData(arrays, {}, metadata, f"minari:{dataset_id}")


def check_episodes_file(path: Path) -> None:
    """Check, before minari reads them, the datasets it reads from `main_data.hdf5` (see rlkit2.data.hdf5)."""
    try:
        with h5py.File(path, "r") as f:
            h = BoundedFile(f, path)
            for name in f.keys():
                episode = h.child(f, name)
                if not isinstance(episode, h5py.Group):
                    continue
                for key in _EPISODE_KEYS:
                    item = h.child(episode, key)
                    if isinstance(item, h5py.Dataset):
                        h.check(item)
                infos = h.child(episode, "infos")
                for _, dset in h.walk(infos) if isinstance(infos, h5py.Group) else ():
                    h.check(dset)
    except (DataError, ConfigError):  # ValueErrors of our own, already clear
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise DataError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from e


def write_minari(
    dataset_id: str,
    episodes: Iterable[Mapping[str, np.ndarray]],
    observation_space: Any,
    action_space: Any,
    *,
    root: str | os.PathLike[str] | None = None,
    env_id: str | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write episodes in Minari 0.5's hdf5 layout under `root` (default MINARI_DATASETS_PATH); returns the dir.

    Each episode maps observations (T+1, d), actions (T, a), rewards (T,), terminations (T,),
    truncations (T,). The dataset directory is built in a temp dir and renamed into place.
    """
    minari = _import_minari()
    from minari.serialization import serialize_space

    root = Path(root) if root is not None else minari_root()
    target = root / dataset_id
    if target.exists():
        raise DataError(f"Minari dataset directory {target} already exists; delete it or choose another id")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        data = tmp / "data"
        data.mkdir()
        total_steps = total_eps = 0
        with h5py.File(data / "main_data.hdf5", "w", track_order=True) as f:
            for i, ep in enumerate(episodes):
                g = f.create_group(f"episode_{i}")
                t = len(ep["rewards"])
                g.attrs["id"] = i
                g.attrs["total_steps"] = t
                for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                    g.create_dataset(key, data=np.asarray(ep[key]))
                total_steps += t
                total_eps += 1
        metadata: dict[str, Any] = {
            "dataset_id": dataset_id,
            "total_episodes": total_eps,
            "total_steps": total_steps,
            "data_format": "hdf5",
            "observation_space": serialize_space(observation_space),
            "action_space": serialize_space(action_space),
            "minari_version": MINARI_FORMAT_VERSION if MINARI_FORMAT_VERSION in minari.supported_dataset_versions
            else sorted(minari.supported_dataset_versions)[-1],
            "dataset_size": round(os.path.getsize(data / "main_data.hdf5") / 1e6, 3),
        }
        if env_id is not None:
            import gymnasium as gym

            metadata["env_spec"] = gym.spec(env_id).to_json()
        metadata.update(extra_metadata or {})
        (data / "metadata.json").write_text(json.dumps(metadata))
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
