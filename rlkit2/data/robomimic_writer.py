"""Writing robomimic-format HDF5 demonstrations, atomically (the reader: `rlkit2.data.robomimic`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rlkit2.core import DataError
from rlkit2.data.robomimic import OBJECT_LAYOUT_ATTR, Demo, normalize_layout


class RobomimicWriter:
    """Streams demos into a robomimic HDF5 file, atomically: everything goes to a temp file in the
    target's directory, renamed over `path` only by a successful `close()` (or `with` exit).
    An exception inside the `with` block deletes the temp file and leaves `path` untouched."""

    def __init__(self, path: str | os.PathLike[str], env_args: Mapping[str, Any] | None = None,
                 object_layout: Sequence[Sequence[Any]] | None = None):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self._f = h5py.File(self._tmp, "w")
        self._data = self._f.create_group("data")
        self._data.attrs["env_args"] = json.dumps(dict(env_args or {}))
        if object_layout is not None:  # the env's obs/object layout, checked by read_robomimic(object_layout=)
            layout = normalize_layout(object_layout)
            self._data.attrs[OBJECT_LAYOUT_ATTR] = json.dumps([list(p) for p in layout])
        self.num_demos = 0
        self.total = 0

    def add(self, demo: Demo) -> str:
        T = len(demo)
        if T == 0:
            raise DataError("cannot write an empty demonstration")
        name = f"demo_{self.num_demos}"
        g = self._data.create_group(name)
        g.attrs["num_samples"] = T
        g.create_dataset("actions", data=np.asarray(demo.actions))
        g.create_dataset("rewards", data=np.asarray(demo.rewards).reshape(T))
        g.create_dataset("dones", data=np.asarray(demo.dones).reshape(T))
        if demo.states is not None:
            g.create_dataset("states", data=np.asarray(demo.states))
        for group, src in (("obs", demo.obs), ("next_obs", demo.next_obs)):
            if src is None:
                continue
            og = g.create_group(group)
            for k, v in src.items():
                if len(v) != T:
                    raise DataError(f"demo {name}: {group}/{k} has {len(v)} rows, actions has {T}")
                og.create_dataset(k, data=np.asarray(v))
        self.num_demos += 1
        self.total += T
        return name

    def set_masks(self, masks: Mapping[str, Sequence[str]]) -> None:
        mg = self._f.require_group("mask")
        for k, names in masks.items():
            mg.create_dataset(k, data=np.array([n.encode() for n in names], dtype="S"))

    def close(self) -> Path:
        self._data.attrs["total"] = self.total
        self._f.flush()
        self._f.close()
        with open(self._tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self) -> RobomimicWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_robomimic(path: str | os.PathLike[str], demos: Iterable[Demo], env_args: Mapping[str, Any] | None = None,
                    masks: Mapping[str, Sequence[str]] | None = None,
                    object_layout: Sequence[Sequence[Any]] | None = None) -> Path:
    """Write demos to `path` atomically (temp file + rename); `object_layout`: see `RobomimicWriter`."""
    with RobomimicWriter(path, env_args, object_layout) as w:
        for d in demos:
            w.add(d)
        if masks:
            w.set_masks(masks)
    return w.path
