"""Bounded reading of HDF5 data files (D4RL, robomimic, Minari), which may be corrupt or crafted.

A few kilobytes of HDF5 can declare terabytes (unwritten chunks cost nothing on disk, and a gzip
chunk inflates about 1000x), link to other files, or pull raw bytes from any local file. The
loaders therefore reach objects and read datasets only through `BoundedFile`, which:

- refuses, with a DataError naming the file and the key: HDF5 external storage (`dset.external`),
  virtual datasets, external (or user-defined) links, soft links that do not resolve inside the
  file, groups reached twice (link cycles), filters other than gzip, lzf, shuffle and fletcher32,
  and variable-length types other than strings and numeric sequences;
- charges every dataset it reads against one budget for the whole file before reading it: its
  declared size (shape x dtype itemsize), plus, while it is read, what HDF5 needs to decode one
  chunk. HDF5 inflates a gzip chunk to its end whatever the chunk's size, so each gzip chunk is
  first inflated here with a bound and refused if it holds more than its declared size; an lzf
  chunk is charged its worst case (88x its stored size). Variable-length values are read one at a
  time, each charged its real size;
- turns a MemoryError into a DataError naming the file and the key.

The budget is `RLKIT2_MAX_DATASET_BYTES` (default 16 GiB): set e.g. `RLKIT2_MAX_DATASET_BYTES=64G`
to read a larger file you trust. Loaders read only the keys they use; other keys are never read.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterator
from typing import Any, TypeAlias

import h5py
import numpy as np

from rlkit2.core import DataError
from rlkit2.data.limits import byte_limit, format_bytes

MAX_DATASET_BYTES_ENV = "RLKIT2_MAX_DATASET_BYTES"
DEFAULT_MAX_DATASET_BYTES = 16 * 2**30
_RAISE_HINT = (f"If the file is trusted, raise the limit with {MAX_DATASET_BYTES_ENV} "
               f"(e.g. {MAX_DATASET_BYTES_ENV}=64G).")

_MAX_SOFT_LINK_HOPS = 16  # HDF5's own limit on soft-link traversal
_MAX_GROUP_DEPTH = 64  # the recursive walks stay far from Python's recursion limit
_LZF_EXPANSION = 88  # an lzf back-reference spends 3 bytes on at most 264 output bytes
_FLETCHER32_BYTES = 4
_FILTERS = {h5py.h5z.FILTER_DEFLATE: "gzip", h5py.h5z.FILTER_LZF: "lzf", h5py.h5z.FILTER_SHUFFLE: "shuffle",
            h5py.h5z.FILTER_FLETCHER32: "fletcher32"}
_EXPANDING = (h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_LZF)

Node: TypeAlias = "h5py.Group | h5py.Dataset"


class BoundedFile:
    """An open HDF5 file whose objects are reached only through in-file links and read within the byte budget."""

    def __init__(self, f: h5py.File, path: str | os.PathLike[str]):
        self.file = f
        self.path = str(path)
        self.limit = byte_limit(MAX_DATASET_BYTES_ENV, DEFAULT_MAX_DATASET_BYTES)
        self.used = 0  # bytes of datasets read so far
        self._size = os.path.getsize(path)
        self._sizeof_addr = f.id.get_create_plist().get_sizes()[0]
        self._groups_seen: set[Any] = set()

    # ------------------------------------------------------------------ reaching objects

    def child(self, group: h5py.Group, name: str) -> Node | None:
        """`group[name]` (a name or a relative path), following links inside the file only; None if absent."""
        return self._resolve(group, name, 0, f"{group.name.rstrip('/')}/{name}")

    def walk(self, group: h5py.Group) -> Iterator[tuple[str, h5py.Dataset]]:
        """(key below `group`, dataset) for every dataset under `group`; each group is entered once."""
        return self._walk(group, "", 0)

    def _walk(self, group: h5py.Group, prefix: str, depth: int) -> Iterator[tuple[str, h5py.Dataset]]:
        if depth > _MAX_GROUP_DEPTH:
            raise DataError(f"{self.path}: '{group.name}' is nested more than {_MAX_GROUP_DEPTH} groups deep")
        if group.id in self._groups_seen:
            raise DataError(f"{self.path}: '{group.name}' is reached twice (a link cycle?); "
                            "rlkit2 reads each group once")
        self._groups_seen.add(group.id)
        for name in group.keys():  # names only: nothing is dereferenced before `child` checks the link
            item = self.child(group, name)
            if isinstance(item, h5py.Group):
                yield from self._walk(item, f"{prefix}{name}/", depth + 1)
            elif isinstance(item, h5py.Dataset):
                yield f"{prefix}{name}", item

    def _resolve(self, start: h5py.Group, target: str, hops: int, where: str) -> Node | None:
        node: Node = self.file if target.startswith("/") else start
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if not isinstance(node, h5py.Group):
                return None
            found = self._link(node, part, hops, where)
            if found is None:
                return None
            node = found
        return node

    def _link(self, group: h5py.Group, name: str, hops: int, where: str) -> Node | None:
        """One path component; the link is inspected before HDF5 follows it (an external one would open a file)."""
        links, key = group.id.links, name.encode()
        if not links.exists(key):
            return None
        kind = links.get_info(key).type
        if kind == h5py.h5l.TYPE_HARD:
            return group[name]
        if kind == h5py.h5l.TYPE_EXTERNAL:
            filename, obj = (v.decode(errors="replace") for v in links.get_val(key))
            raise DataError(f"{self.path}: '{where}' is a link to another file ({filename}:{obj}); "
                            "rlkit2 reads only self-contained HDF5 files")
        if kind != h5py.h5l.TYPE_SOFT:
            raise DataError(f"{self.path}: '{where}' is a user-defined HDF5 link; rlkit2 follows only links "
                            "inside the file")
        target = links.get_val(key).decode(errors="replace")
        if hops >= _MAX_SOFT_LINK_HOPS:
            raise DataError(f"{self.path}: soft links from '{where}' chain more than {_MAX_SOFT_LINK_HOPS} deep "
                            "(a loop?)")
        found = self._resolve(group, target, hops + 1, where)
        if found is None:
            raise DataError(f"{self.path}: '{where}' is a soft link to '{target}', which is not in the file")
        return found

    # ------------------------------------------------------------------ reading

    def read(self, dset: h5py.Dataset) -> Any:
        """The whole of `dset` (an array, or the value of a scalar), read only once it passed the checks."""
        self.check(dset)
        try:
            return self._read_vlen(dset) if dset.dtype.hasobject else dset[()]
        except MemoryError as e:
            raise DataError(f"{self.path}: '{dset.name}' (shape {dset.shape}, {dset.dtype}) does not fit in "
                            "memory") from e

    def check(self, dset: h5py.Dataset) -> None:
        """Refuse what `dset` must not be, and charge it to the budget (for data another library reads)."""
        self._check_storage(dset)
        if dset.shape is None:  # a null dataspace holds no value
            return
        declared = math.prod(dset.shape) * dset.dtype.itemsize
        self._fits(dset, declared)  # before the chunks are scanned: a refusal costs nothing
        self._fits(dset, declared + self._decode_bytes(dset))
        self.used += declared

    def _fits(self, dset: h5py.Dataset, need: int) -> None:
        if self.used + need > self.limit:
            already = f" (after {format_bytes(self.used)} already read)" if self.used else ""
            raise DataError(
                f"{self.path}: '{dset.name}' declares shape {dset.shape} of {dset.dtype} ({format_bytes(need)} to "
                f"read), over the {format_bytes(self.limit)} limit on what rlkit2 reads from one file{already}. "
                f"{_RAISE_HINT}"
            )

    def read_attr(self, obj: Node, name: str) -> Any:
        """Attribute `name` of `obj`. Fixed-size values are stored whole in the file, so bounded by its size;
        an array of variable-length values could repeat one large value, so only scalar ones are read."""
        attr = obj.attrs.get_id(name)
        if attr.dtype.hasobject and attr.shape != ():
            raise DataError(f"{self.path}: attribute '{name}' of '{obj.name}' is an array of variable-length "
                            "values; expected a single value")
        return obj.attrs[name]

    def _check_storage(self, dset: h5py.Dataset) -> None:
        where = f"{self.path}: '{dset.name}'"
        if dset.is_virtual:
            raise DataError(f"{where} is a virtual dataset (mapped from other files); rlkit2 reads only "
                            "self-contained HDF5 files")
        if dset.external:
            raise DataError(f"{where} keeps its data in external file(s) {[str(e[0]) for e in dset.external]}; "
                            "rlkit2 reads only self-contained HDF5 files")
        for code in _filters(dset):
            if code not in _FILTERS:
                raise DataError(f"{where} uses HDF5 filter {code}; rlkit2 reads only {', '.join(_FILTERS.values())}")
        dt = dset.dtype
        base = h5py.check_vlen_dtype(dt)  # str/bytes for strings, a dtype for sequences
        if dt.hasobject and (dt.kind != "O" or h5py.check_ref_dtype(dt) is not None
                             or (isinstance(base, np.dtype) and base.hasobject)):
            raise DataError(f"{where} has dtype {dt} (references or nested variable-length values), "
                            "which rlkit2 does not read")

    def _decode_bytes(self, dset: h5py.Dataset) -> int:
        """What HDF5 holds at once, beyond the result, to decode one chunk of `dset`."""
        if dset.chunks is None:
            return 0
        # in a chunk, a variable-length value is a heap reference: length, heap address, index
        itemsize = 8 + self._sizeof_addr if dset.dtype.kind == "O" else dset.dtype.itemsize
        chunk = math.prod(dset.chunks) * itemsize
        filters = _filters(dset)
        expanding = [i for i, code in enumerate(filters) if code in _EXPANDING]
        if not expanding:
            return chunk
        first = expanding[0]
        if len(expanding) > 1 or any(code != h5py.h5z.FILTER_FLETCHER32 for code in filters[first + 1:]):
            raise DataError(f"{self.path}: '{dset.name}' has an unusual filter pipeline "
                            f"{[_FILTERS[c] for c in filters]}; rlkit2 reads one compressor, applied last")
        stored = 0
        for offset, mask, size in self._chunks(dset):
            stored = max(stored, size)
            if filters[first] == h5py.h5z.FILTER_DEFLATE and not mask & (1 << first):
                self._check_inflated_size(dset, offset, chunk + _FLETCHER32_BYTES)
        expansion = _LZF_EXPANSION if filters[first] == h5py.h5z.FILTER_LZF else 1
        return chunk + stored * expansion

    def _chunks(self, dset: h5py.Dataset) -> list[tuple[tuple[int, ...], int, int]]:
        """(offset, filter mask, stored size) of each written chunk; refuses chunks outside the file."""
        infos: list[Any] = []
        dset.id.chunk_iter(infos.append)
        if any(info.byte_offset + info.size > self._size for info in infos):
            raise DataError(f"{self.path}: '{dset.name}' has a chunk beyond the end of the file "
                            "(truncated or corrupt?)")
        return [(info.chunk_offset, info.filter_mask, info.size) for info in infos]

    def _check_inflated_size(self, dset: h5py.Dataset, offset: tuple[int, ...], most: int) -> None:
        _, raw = dset.id.read_direct_chunk(offset)
        stream = zlib.decompressobj()
        try:
            stream.decompress(raw, most)
            too_big = not stream.eof and bool(stream.unconsumed_tail or stream.decompress(b"", 1))
        except zlib.error as e:
            raise DataError(f"{self.path}: '{dset.name}' has a corrupt gzip chunk at {offset}: {e}") from e
        if too_big:
            raise DataError(f"{self.path}: '{dset.name}' has a gzip chunk at {offset} that inflates beyond its "
                            f"declared {format_bytes(most)} (a decompression bomb, or corrupt)")

    def _read_vlen(self, dset: h5py.Dataset) -> Any:
        """Variable-length values one at a time, each charged its real size before the next is read."""
        if dset.shape == ():
            return self._charged(dset, dset[()])
        out = np.empty(dset.shape, dtype=object)
        for index in np.ndindex(dset.shape):
            out[index] = self._charged(dset, dset[index])
        return out

    def _charged(self, dset: h5py.Dataset, value: Any) -> Any:
        self.used += value.nbytes if isinstance(value, np.ndarray) else len(value)
        if self.used > self.limit:
            raise DataError(f"{self.path}: the variable-length values of '{dset.name}' take more than the "
                            f"{format_bytes(self.limit)} limit on what rlkit2 reads from one file. {_RAISE_HINT}")
        return value


def _filters(dset: h5py.Dataset) -> list[int]:
    """The filter ids of `dset`'s pipeline, in the order they are applied on writing."""
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
