"""What `rlkit2-data info` needs beyond D4RL rows: telling the formats apart by a file's keys, describing a
robomimic file (demos, lengths, observation keys, masks, env_args), and finding a Minari dataset given by path.

Formats, told apart by the top-level keys of an HDF5 file (names only: nothing is dereferenced or read):

- D4RL: `observations`, `actions`, `rewards`, `terminals`, `timeouts` (rlkit2.data.d4rl);
- robomimic: `data/demo_<i>/{obs/<key>, actions, rewards, dones}`, `mask/<filter key>` (rlkit2.data.robomimic);
- Minari: a dataset directory `<root>/<namespace>/<name>-v<k>/data/{metadata.json, main_data.hdf5}`, whose
  `main_data.hdf5` holds `episode_<i>` groups (rlkit2.data.minari_io).

The robomimic description reads only actions, rewards and dones (through `BoundedFile`); observation keys are
listed with their shapes, never read, so an image dataset costs no more than a low-dim one.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlkit2.core import DataError

FORMATS = ("d4rl", "robomimic", "minari")
_EPISODE_RE = re.compile(r"^episode_\d+$")
_DEMO_RE = re.compile(r"^demo_\d+$")
ROBOMIMIC_ENV_TYPES = {1: "robosuite", 2: "gym", 3: "iGibson (MoMaRT)"}  # robomimic's EnvType


def _top_keys(path: Path) -> list[str]:
    try:
        with h5py.File(path, "r") as f:
            return sorted(f.keys())
    except OSError as e:
        raise DataError(f"{path} is not a readable HDF5 file: {e}") from e


def minari_data_dir(path: str | os.PathLike[str]) -> Path | None:
    """The `data/` directory of a Minari dataset given as its directory, its `data/` or its `main_data.hdf5`."""
    p = Path(path).expanduser()
    for d in (p.parent if p.is_file() else p, p / "data"):
        if (d / "main_data.hdf5").is_file() and (d / "metadata.json").is_file():
            return d
    return None


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """"d4rl", "robomimic" or "minari" for an existing file or directory; None when `path` does not exist
    (a dataset name or `minari:<id>`). An HDF5 file of none of these is a DataError naming its keys."""
    p = Path(path).expanduser()
    if p.is_dir():
        if minari_data_dir(p) is not None:
            return "minari"
        raise DataError(f"{p} is a directory but not a Minari dataset (no data/main_data.hdf5 with "
                        "data/metadata.json); give a D4RL or robomimic HDF5 file, or a Minari dataset directory")
    if not p.is_file():
        return None
    if minari_data_dir(p) is not None:
        return "minari"
    keys = _top_keys(p)
    if "observations" in keys or "actions" in keys:
        return "d4rl"
    if "data" in keys:
        return "robomimic"
    if any(_EPISODE_RE.match(k) for k in keys):
        return "minari"
    raise DataError(f"{p}: not a dataset format rlkit2 reads (top-level keys {keys[:20]}); expected D4RL "
                    "(observations, actions, rewards, terminals, timeouts), robomimic (data/demo_<i>/..., mask/...) "
                    "or a Minari dataset directory (data/main_data.hdf5 + data/metadata.json)")


def minari_id_for_path(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """(dataset id, datasets root) of a Minari dataset on disk, from its `metadata.json`: reading it as
    `minari:<id>` with `MINARI_DATASETS_PATH=<root>` finds the same files."""
    from rlkit2.data.jsonl import read_json

    data_dir = minari_data_dir(path)
    if data_dir is None:
        raise DataError(f"{path}: no Minari data/ directory (main_data.hdf5 + metadata.json) there")
    meta = read_json(data_dir / "metadata.json")
    dataset_id = meta.get("dataset_id") if isinstance(meta, dict) else None
    if not isinstance(dataset_id, str) or not dataset_id:
        raise DataError(f"{data_dir / 'metadata.json'}: no 'dataset_id'")
    dataset_dir = data_dir.parent.resolve()
    parts = dataset_id.split("/")
    if tuple(dataset_dir.parts[-len(parts):]) != tuple(parts):
        raise DataError(f"{dataset_dir}: its metadata names dataset '{dataset_id}', but it is not stored at "
                        f"<root>/{dataset_id} (Minari finds datasets by that path); move it there")
    return dataset_id, dataset_dir.parents[len(parts) - 1]


def _shape(item: Any) -> str:
    shape = getattr(item, "shape", None)
    if shape is None:
        return "(?)"
    return f"{tuple(int(s) for s in shape[1:])} {item.dtype}"


def describe_robomimic(path: str | os.PathLike[str]) -> str:
    """A robomimic file in a few lines: env_args, demos and their lengths, successes (a demo ending with
    `dones` = 1), returns, observation keys (shapes), actions, states, masks (filter keys), and how to use it."""
    from rlkit2.data.hdf5 import BoundedFile
    from rlkit2.data.robomimic import _demo_sort_key, _read_masks

    p = Path(path).expanduser()
    lines = [f"source: {p}",
             "format: robomimic (data/demo_<i>/{obs/<key>, actions, rewards, dones}; mask/<filter key>)"]
    with h5py.File(p, "r") as f:
        h = BoundedFile(f, p)
        data = h.child(f, "data")
        if not isinstance(data, h5py.Group):
            raise DataError(f"{p}: 'data' is not a group; is this a robomimic dataset?")
        env_args: dict[str, Any] = {}
        if "env_args" in data.attrs:
            try:
                env_args = json.loads(h.read_attr(data, "env_args"))
            except (ValueError, TypeError, RecursionError) as e:
                raise DataError(f"{p}: data.attrs['env_args'] is not valid JSON: {e}") from e
        names = sorted((n for n in data.keys() if _DEMO_RE.match(n)), key=_demo_sort_key)
        others = sorted(n for n in data.keys() if not _DEMO_RE.match(n))
        if not names:
            raise DataError(f"{p}: no demo_<i> groups under data/ (has {sorted(data.keys())[:20]})")
        lengths: list[int] = []
        returns: list[float] = []
        successes = 0
        obs_shapes: dict[str, str] = {}
        key_count: dict[str, int] = {}
        act_dims: set[int] = set()
        act_lo, act_hi = np.inf, -np.inf
        has_next, has_states = 0, 0
        state_shape = ""
        for name in names:
            g = h.child(data, name)
            if not isinstance(g, h5py.Group):
                raise DataError(f"{p}: data/{name} is not a demo group")
            acts = h.child(g, "actions")
            if not isinstance(acts, h5py.Dataset):
                raise DataError(f"{p}: demo '{name}' has no 'actions' array (has {sorted(g.keys())})")
            a = np.asarray(h.read(acts), dtype=np.float64)
            lengths.append(len(a))
            if a.ndim == 2 and len(a):
                act_dims.add(int(a.shape[1]))
                act_lo, act_hi = min(act_lo, float(a.min())), max(act_hi, float(a.max()))
            for key, target in (("rewards", returns), ("dones", None)):
                item = h.child(g, key)
                if isinstance(item, h5py.Dataset):
                    v = np.asarray(h.read(item), dtype=np.float64).reshape(-1)
                    if target is not None:
                        target.append(float(v.sum()))
                    elif len(v) and v[-1] >= 1:
                        successes += 1
            obs = h.child(g, "obs")
            if isinstance(obs, h5py.Group):
                for k in obs.keys():
                    key_count[k] = key_count.get(k, 0) + 1
                    if k not in obs_shapes:
                        obs_shapes[k] = _shape(h.child(obs, k))
            has_next += isinstance(h.child(g, "next_obs"), h5py.Group)
            states = h.child(g, "states")
            if isinstance(states, h5py.Dataset):
                has_states += 1
                state_shape = state_shape or _shape(states)
        masks = _read_masks(h)
        total_attr = data.attrs.get("total")
    n, lens = len(names), np.asarray(lengths)
    if env_args:
        kind = ROBOMIMIC_ENV_TYPES.get(env_args.get("type"), f"type {env_args.get('type')}")  # type: ignore[arg-type]
        lines.append(f"env_args: env_name={env_args.get('env_name', '?')}  ({kind})")
        for k, v in sorted((env_args.get("env_kwargs") or {}).items()):
            lines.append(f"  env_kwargs/{k}: {v}")
    else:
        lines.append("env_args: none (data.attrs['env_args'] missing or empty)")
    total = f"  (data.attrs total: {int(total_attr)})" if total_attr is not None else ""
    lines.append(f"demos: {n}  transitions: {int(lens.sum())}{total}")
    lines.append(f"demo length: mean {lens.mean():.1f}  min {lens.min()}  max {lens.max()}")
    lines.append(f"successful demos (dones = 1 at the last step): {successes}/{n}")
    if returns:
        r = np.asarray(returns)
        lines.append(f"demo return: mean {r.mean():.2f}  min {r.min():.2f}  max {r.max():.2f}")
    lines.append(f"actions: dim {', '.join(map(str, sorted(act_dims))) or '?'}  range [{act_lo:.3g}, {act_hi:.3g}]")
    lines.append(f"observation keys ({len(obs_shapes)}; shape a step):")
    for k, s in sorted(obs_shapes.items()):
        missing = "" if key_count[k] == n else f"  (in {key_count[k]}/{n} demos only)"
        lines.append(f"  obs/{k}: {s}{missing}")
    lines.append(f"next_obs: {'in every demo' if has_next == n else f'in {has_next}/{n} demos'}"
                 f"{' (derived from obs when absent)' if has_next < n else ''}")
    lines.append(f"states: in {has_states}/{n} demos {state_shape}" if has_states else "states: none")
    if masks:
        lines.append("masks (filter keys): " + ", ".join(f"{k} ({len(v)} demos)" for k, v in sorted(masks.items())))
    else:
        lines.append("masks (filter keys): none")
    if others:
        lines.append(f"other entries under data/: {others[:10]}")
    if "valid" in masks:  # robomimic's split: train on the rest, validate on these
        filter_hint = " env.valid_filter_key=valid"
        used = f"the demos outside mask/valid are trained on, the {len(masks['valid'])} in it validate"
    else:
        filter_hint = f" env.filter_key={sorted(masks)[0]}" if masks else ""
        used = f"all {n} demos are used"
    lines.append(f"use: rlkit2-train agent=bc env=robosuite/lift env.dataset={p}{filter_hint}")
    lines.append(f"  ({used}; env.max_demos=K keeps the first K)")
    return "\n".join(lines)
