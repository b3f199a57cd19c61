"""robomimic-format HDF5 demonstrations: reading (real robomimic datasets load). Writing, atomically:
`rlkit2.data.robomimic_writer`; replaying a demo from its states: `rlkit2.data.demo_replay`.

Layout (robomimic v0.3 "low_dim" files):
    data/                      attrs: env_args (JSON: env_name, type, env_kwargs), total (transitions),
                               object_obs_layout (rlkit2's files: JSON [[name, size], ...], the order of the
                               robosuite sub-observations concatenated into obs/object)
    data/demo_<i>/             attrs: num_samples
        obs/<key>              (T, ...)  observation before the action
        next_obs/<key>         (T, ...)  observation after it (optional on read: derived from obs)
        actions                (T, A)
        rewards, dones         (T,)
        states                 (T, S)    flattened MuJoCo state (optional on read)
    mask/<filter>              names of demos (bytes), e.g. train / valid (optional)

h5py only: PyPI robomimic 0.3 imports mujoco_py, which this stack does not have. `read_robomimic` reads
only the demos, observation keys and masks it returns, through `rlkit2.data.hdf5.BoundedFile`: links
and storage outside the file are refused, and what is read is bounded by `RLKIT2_MAX_DATASET_BYTES`
(default 16 GiB; raise it, e.g. `=64G`, for a larger trusted file).

Image observations (e.g. `agentview_image`, uint8 (T, H, W, C)) are read only when named in `image_keys`: as uint8,
from obs/ only (next_obs images are not read: behaviour cloning does not use them), never flattened into the
low-dim vector. `to_transitions(..., image_keys=)` returns them as `images/<key>` (N, H, W, C) uint8 arrays beside
the flat low-dim ones (the BC agent's `agent.image_keys`). Without `obs_keys`, image-like keys are left out.

`rlkit2.data.demo_replay.replay_demo(env, demo)` checks that a demo reproduces from its recorded `states`: it
resets the env to the first state, replays the actions and reports the largest deviation of the states and
low-dim observations.

obs/object is robosuite's "object-state": sub-observations (e.g. Can_pos, Can_quat, Can_to_robot0_eef_pos, ...)
concatenated in an order that differs between robosuite versions. Given the env's layout (`RobosuiteEnv.
object_layout()`), `read_robomimic(..., object_layout=)` refuses a file whose recorded layout differs, and warns
once per file that records none (robomimic's own files, older rlkit2 files): its columns could not be checked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlkit2.core import DataError
from rlkit2.data.hdf5 import BoundedFile

_DEMO_RE = re.compile(r"^demo_(\d+)$")
OBJECT_LAYOUT_ATTR = "object_obs_layout"  # data.attrs key: JSON [[sub-observation name, size], ...]
ObjectLayout = list[tuple[str, int]]
_LAYOUT_WARNED: set[str] = set()  # files already warned about (once per file and process)


def normalize_layout(layout: Iterable[Sequence[Any]], where: str = "object layout") -> ObjectLayout:
    """`[(name, size), ...]` from any sequence of pairs (JSON gives lists); DataError when malformed."""
    out: ObjectLayout = []
    try:
        for item in layout:
            name, size = item
            if not isinstance(name, str) or isinstance(size, bool) or int(size) != size or int(size) <= 0:
                raise ValueError(f"bad entry {item!r}")
            out.append((name, int(size)))
    except (TypeError, ValueError) as e:
        raise DataError(f"{where} must be a list of [name, size] pairs: {e}") from e
    return out


def _show(layout: ObjectLayout) -> str:
    return "[" + ", ".join(f"{n}({k})" for n, k in layout) + "]"


def check_object_layout(path: str, file_layout: ObjectLayout | None, env_layout: Sequence[Sequence[Any]],
                        env_args: Mapping[str, Any] | None = None) -> None:
    """Refuse (DataError) a file whose recorded object-state layout differs from the env's; warn once per
    file when the file records none."""
    env = normalize_layout(env_layout, "the env's object layout")
    if file_layout is None:
        if path not in _LAYOUT_WARNED:
            _LAYOUT_WARNED.add(path)
            version = (env_args or {}).get("env_version")
            made = f" (written with robosuite {version})" if version else ""
            warnings.warn(f"{path}{made} does not record its object-state layout (data.attrs"
                          f"['{OBJECT_LAYOUT_ATTR}']): the column order of obs/object could not be checked against "
                          f"the env's {_show(env)}; robosuite versions order these sub-observations differently, "
                          "so demos from another version may load with columns swapped", UserWarning, stacklevel=3)
        return
    if file_layout != env:
        raise DataError(
            f"{path}: obs/object layout {_show(file_layout)} (data.attrs['{OBJECT_LAYOUT_ATTR}']) differs from "
            f"the env's {_show(env)}: its columns would be misread. Collect demos in this env (python -m "
            f"rlkit2.data.collect_demos) or reorder every demo's obs/object and next_obs/object columns to the "
            f"env's order and set that attribute to {json.dumps([list(p) for p in env])}")


@dataclasses.dataclass
class Demo:
    """One demonstration; every array has the same leading length T."""

    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    next_obs: dict[str, np.ndarray] | None = None
    states: np.ndarray | None = None
    name: str = ""

    def __len__(self) -> int:
        return int(len(self.actions))

    def flat_obs(self, keys: Sequence[str], *, next: bool = False) -> np.ndarray:
        """(T, D) float32: the `keys` concatenated in order (the adapter's observation layout)."""
        src = self.next_obs if next else self.obs
        if src is None:
            raise DataError(f"demo '{self.name}' has no next_obs")
        return np.concatenate([np.asarray(src[k], np.float32).reshape(len(self), -1) for k in keys], axis=1)


@dataclasses.dataclass
class RobomimicDataset:
    demos: list[Demo]
    env_args: dict[str, Any]
    path: str
    masks: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    object_layout: ObjectLayout | None = None  # the file's recorded obs/object layout (None: not recorded)

    def __len__(self) -> int:
        return len(self.demos)

    @property
    def num_transitions(self) -> int:
        return sum(len(d) for d in self.demos)


def _demo_sort_key(name: str) -> tuple[int, str]:
    m = _DEMO_RE.match(name)
    return (int(m.group(1)), name) if m else (1 << 62, name)


def _group(h: BoundedFile, parent: h5py.Group, key: str) -> h5py.Group | None:
    item = h.child(parent, key)
    if item is not None and not isinstance(item, h5py.Group):
        raise DataError(f"{h.path}: '{parent.name.rstrip('/')}/{key}' is not a group")
    return item


def _read_array(h: BoundedFile, group: h5py.Group, key: str, demo: str) -> np.ndarray:
    item = h.child(group, key)
    if item is None:
        raise DataError(f"{h.path}: demo '{demo}' has no '{key}' (has {sorted(group.keys())})")
    if not isinstance(item, h5py.Dataset):
        raise DataError(f"{h.path}: demo '{demo}' field '{key}' is a group, expected an array")
    return np.asarray(h.read(item))


def _numeric(v: np.ndarray, path: str, demo: str, key: str) -> np.ndarray:
    """`v` as float32, or DataError when it is not numbers or has no leading time axis."""
    if v.dtype.kind not in "biuf":
        raise DataError(f"{path}: demo '{demo}' field '{key}' has dtype {v.dtype}, expected numbers")
    if v.ndim == 0:
        raise DataError(f"{path}: demo '{demo}' field '{key}' is a scalar, expected one row per step")
    return v.astype(np.float32)


def is_image(shape: Sequence[int], dtype: Any) -> bool:
    """An image observation: uint8 (T, H, W, C) with C in 1..4 (robomimic's `*_image` keys)."""
    return np.dtype(dtype) == np.uint8 and len(shape) == 4 and 1 <= int(shape[-1]) <= 4


def read_robomimic(path: str | os.PathLike[str], *, obs_keys: Sequence[str] | None = None,
                   filter_key: str | None = None, max_demos: int | None = None,
                   object_layout: Sequence[Sequence[Any]] | None = None,
                   image_keys: Sequence[str] = (), exclude_key: str | None = None) -> RobomimicDataset:
    """Read a robomimic HDF5 file. `obs_keys` (default: all of the first demo's but image-like ones) must exist
    in every demo; `image_keys`: image observations read as uint8 (T, H, W, C) into `Demo.obs` only;
    `filter_key` selects the demos listed under `mask/<filter_key>`; `exclude_key` leaves out those under
    `mask/<exclude_key>` (held-out validation demos; before `max_demos` caps the rest), and a `filter_key` whose
    demos include one of them is refused. `object_layout`: the env's obs/object
    layout (`RobosuiteEnv.object_layout()`), checked against the file's (`check_object_layout`).
    Malformed files raise DataError."""
    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        raise DataError(f"robomimic dataset {path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path} is not a readable HDF5 file: {e}") from e
    with f:
        h = BoundedFile(f, path)
        data = _group(h, f, "data")
        if data is None:
            raise DataError(f"{path}: no 'data' group; is this a robomimic dataset? "
                            f"(top-level keys {sorted(f.keys())})")
        env_args: dict[str, Any] = {}
        if "env_args" in data.attrs:
            try:
                env_args = json.loads(h.read_attr(data, "env_args"))
            except (ValueError, TypeError, RecursionError) as e:  # JSONDecodeError is a ValueError
                raise DataError(f"{path}: data.attrs['env_args'] is not valid JSON: {e}") from e
        file_layout: ObjectLayout | None = None
        if OBJECT_LAYOUT_ATTR in data.attrs:
            where = f"{path}: data.attrs['{OBJECT_LAYOUT_ATTR}']"
            try:
                file_layout = normalize_layout(json.loads(h.read_attr(data, OBJECT_LAYOUT_ATTR)), where)
            except (ValueError, TypeError, RecursionError) as e:
                raise DataError(f"{where} is not valid JSON: {e}") from e
        if object_layout is not None:
            check_object_layout(path, file_layout, object_layout, env_args)
        masks = _read_masks(h)
        if filter_key is not None:
            if filter_key not in masks:
                raise DataError(f"{path}: filter_key '{filter_key}' not in mask/ (have {sorted(masks)})")
            names = masks[filter_key]
            if not names:
                raise DataError(f"{path}: mask/{filter_key} lists no demos")
        else:
            names = sorted(data.keys(), key=_demo_sort_key)
        if exclude_key is not None:
            if exclude_key not in masks:
                raise DataError(f"{path}: mask '{exclude_key}' (the held-out demos) not in mask/ "
                                f"(have {sorted(masks)})")
            held = set(masks[exclude_key])
            if filter_key is not None and held & set(names):
                raise DataError(f"{path}: mask/{filter_key} and mask/{exclude_key} share demos "
                                f"{sorted(held & set(names))[:5]}: held-out demos would be trained on")
            names = [n for n in names if n not in held]
        if not names:
            raise DataError(f"{path}: no demonstrations under data/"
                            + (f" outside mask/{exclude_key}" if exclude_key is not None else ""))
        if max_demos is not None:
            names = names[:max_demos]
        demos: list[Demo] = []
        for name in names:
            try:
                demo = h.child(data, name)
                if demo is None:
                    raise DataError(f"{path}: demo '{name}' (listed in mask/{filter_key}) is missing from data/")
                if not isinstance(demo, h5py.Group):
                    raise DataError(f"{path}: data/{name} is not a demo group")
                demos.append(_read_demo(h, demo, name, obs_keys, image_keys))
            except DataError:
                raise
            except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:  # corrupt storage
                raise DataError(f"{path}: demo '{name}' could not be read (truncated or corrupt?): {e}") from e
            if obs_keys is None:
                obs_keys = [k for k in demos[0].obs if k not in image_keys]
            if file_layout is not None and "object" in demos[-1].obs:
                width = int(np.prod(demos[-1].obs["object"].shape[1:]))
                if width != sum(k for _, k in file_layout):
                    raise DataError(f"{path}: demo '{name}' obs/object has {width} columns but the file's "
                                    f"layout {_show(file_layout)} has {sum(k for _, k in file_layout)}")
    return RobomimicDataset(demos, env_args, path, masks, file_layout)


def _read_masks(h: BoundedFile) -> dict[str, list[str]]:
    """`mask/<filter>` -> demo names."""
    try:
        group = _group(h, h.file, "mask")
        if group is None:
            return {}
        return {k: [n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(h.read(d))]
                for k, d in h.walk(group)}
    except DataError:
        raise
    except (OSError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{h.path}: mask/ could not be read: {e}") from e


def _read_demo(h: BoundedFile, g: h5py.Group, name: str, obs_keys: Sequence[str] | None,
               image_keys: Sequence[str] = ()) -> Demo:
    path = h.path
    actions = _numeric(_read_array(h, g, "actions", name), path, name, "actions")
    T = len(actions)
    obs_group = _group(h, g, "obs")
    if obs_group is None:
        raise DataError(f"{path}: demo '{name}' has no 'obs' group (has {sorted(g.keys())})")
    if obs_keys is not None:
        keys = [k for k in obs_keys if k not in image_keys]
    else:  # image-like datasets are left out unless asked for (their shape and dtype are known unread)
        keys = [k for k in sorted(obs_group.keys()) if k not in image_keys and not (
            isinstance(d := h.child(obs_group, k), h5py.Dataset) and is_image(d.shape, d.dtype))]
    obs = {k: _read_array(h, obs_group, k, f"{name}/obs") for k in keys}
    images = {k: _read_array(h, obs_group, k, f"{name}/obs") for k in image_keys}
    for k, v in images.items():
        if not is_image(v.shape, v.dtype):
            raise DataError(f"{path}: demo '{name}' obs/{k} has shape {v.shape} and dtype {v.dtype}; an image key "
                            "must be uint8 (T, H, W, C) with 1 to 4 channels")
    for k, v in obs.items():
        if v.ndim == 0:
            raise DataError(f"{path}: demo '{name}' field 'obs/{k}' is a scalar, expected one row per step")
    next_group = _group(h, g, "next_obs")
    if next_group is not None:
        next_obs = {k: _read_array(h, next_group, k, f"{name}/next_obs") for k in keys}
    else:  # robomimic can omit next_obs; the last next observation repeats the last one
        next_obs = {k: np.concatenate([v[1:], v[-1:]]) for k, v in obs.items()}
    rewards = _numeric(_read_array(h, g, "rewards", name), path, name, "rewards").reshape(-1)
    dones = _numeric(_read_array(h, g, "dones", name), path, name, "dones").reshape(-1)
    states = _read_array(h, g, "states", name) if h.child(g, "states") is not None else None
    fields: dict[str, np.ndarray] = {"rewards": rewards, "dones": dones}
    fields.update({f"obs/{k}": v for k, v in obs.items()})
    fields.update({f"next_obs/{k}": v for k, v in next_obs.items()})
    fields.update({f"obs/{k}": v for k, v in images.items()})
    if states is not None:
        fields["states"] = states
    for k, v in fields.items():
        if v.ndim == 0:
            raise DataError(f"{path}: demo '{name}' field '{k}' is a scalar, expected one row per step")
        if len(v) != T:
            raise DataError(f"{path}: demo '{name}' field '{k}' has {len(v)} rows but actions has {T}")
    if T == 0:
        raise DataError(f"{path}: demo '{name}' is empty")
    if actions.ndim != 2:
        raise DataError(f"{path}: demo '{name}' actions have shape {actions.shape}, expected (T, action_dim)")
    numeric = {"actions": actions, **fields}
    numeric.pop("states", None)  # simulator state: only replayed, never learned from
    for k, v in numeric.items():
        if v.dtype.kind not in "biuf":
            raise DataError(f"{path}: demo '{name}' field '{k}' has dtype {v.dtype}, expected numbers")
        finite = np.isfinite(v)
        if not finite.all():
            raise DataError(f"{path}: demo '{name}' field '{k}' has {int((~finite).sum())} NaN/inf value(s), "
                            f"first at index {tuple(int(i) for i in np.argwhere(~finite)[0])}")
    return Demo({**obs, **images}, actions, rewards, dones, next_obs, states, name)


def to_transitions(dataset: RobomimicDataset | Iterable[Demo], obs_keys: Sequence[str],
                   image_keys: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Flatten demos into the arrays `TransitionReplay.from_arrays` takes (+ `next_actions`, `timeouts`).

    `terminals` = the demo's `dones` (robomimic marks success at the end); the last step of a demo that
    is not done is a time-out, not a terminal. `image_keys`: also `images/<key>`, the observation images
    (N, H, W, C) uint8, row for row with `observations` (an image key in `obs_keys` is refused: it would be
    flattened into the low-dim vector as floats).
    """
    demos = dataset.demos if isinstance(dataset, RobomimicDataset) else list(dataset)
    if not demos:
        raise DataError("no demonstrations to convert")
    obs, nxt, act, rew, term, nact, tout = [], [], [], [], [], [], []
    imgs: dict[str, list[np.ndarray]] = {k: [] for k in image_keys}
    for d in demos:
        missing = [k for k in [*obs_keys, *image_keys] if k not in d.obs]
        if missing:
            raise DataError(f"demo '{d.name}' lacks observation keys {missing} (has {sorted(d.obs)})")
        flat_images = [k for k in obs_keys if is_image(d.obs[k].shape, d.obs[k].dtype)]
        if flat_images:
            raise DataError(f"obs_keys {flat_images} are images (uint8 {d.obs[flat_images[0]].shape[1:]}): pass them "
                            "as image_keys, not as low-dim observations")
        for k in image_keys:
            if not is_image(d.obs[k].shape, d.obs[k].dtype):
                raise DataError(f"demo '{d.name}' obs/{k} has shape {d.obs[k].shape} and dtype {d.obs[k].dtype}; "
                                "an image key must be uint8 (T, H, W, C)")
            imgs[k].append(d.obs[k])
        obs.append(d.flat_obs(obs_keys))
        nxt.append(d.flat_obs(obs_keys, next=True))
        act.append(d.actions.astype(np.float32))
        rew.append(d.rewards)
        term.append(d.dones)
        nact.append(np.concatenate([d.actions[1:], d.actions[-1:]]).astype(np.float32))
        t = np.zeros(len(d), np.float32)
        t[-1] = 1.0 - float(d.dones[-1])
        tout.append(t)
    widths = {(o.shape[1], a.shape[1]) for o, a in zip(obs, act, strict=True)}
    if len(widths) > 1:
        raise DataError(f"demos disagree on (observation, action) widths {sorted(widths)} "
                        f"for obs_keys {list(obs_keys)}")
    for k, frames in imgs.items():
        if len({f.shape[1:] for f in frames}) > 1:
            raise DataError(f"demos disagree on the shape of image '{k}': {sorted({f.shape[1:] for f in frames})}")
    return {"observations": np.concatenate(obs), "next_observations": np.concatenate(nxt),
            "actions": np.concatenate(act), "rewards": np.concatenate(rew).astype(np.float32),
            "terminals": np.concatenate(term).astype(np.float32), "next_actions": np.concatenate(nact),
            "timeouts": np.concatenate(tout), **{f"images/{k}": np.concatenate(v) for k, v in imgs.items()}}
