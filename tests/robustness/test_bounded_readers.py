"""Probes of the data-file readers with hostile files: every read is bounded, every failure a clear DataError.

HDF5 (D4RL, robomimic, Minari): tiny files that declare huge datasets, decompression bombs, external storage and
links are refused (or, for keys the loader does not use, never read) before memory is spent; `rlkit2.data.hdf5`.
JSONL (preference pairs, prompt files, metrics.jsonl): deep nesting, invalid UTF-8 and over-long lines give
`DataError("<file>:<line>: ...")`; `rlkit2.data.jsonl`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
from rlkit2.envs.text import read_jsonl_field

from rlkit2.core import ConfigError, DataError
from rlkit2.data.d4rl import read_d4rl, write_d4rl
from rlkit2.data.robomimic import Demo, read_robomimic
from rlkit2.data.robomimic_writer import write_robomimic
from rlkit2.logging import read_metrics
from rlkit2.rewards.bradley_terry import load_preference_pairs

ROOT = Path(__file__).resolve().parents[2]
GiB = 2**30


def _rows(n: int = 50) -> dict[str, np.ndarray]:
    timeouts = np.zeros(n, bool)
    timeouts[-1] = True
    return {"observations": np.zeros((n, 3), np.float32), "actions": np.zeros((n, 2), np.float32),
            "rewards": np.zeros(n, np.float32), "terminals": np.zeros(n, bool), "timeouts": timeouts}


def _d4rl(path: Path, edit=None, rows=None, compression=None) -> Path:
    write_d4rl(path, rows or _rows(), compression=compression)
    if edit is not None:
        with h5py.File(path, "a") as f:
            edit(f)
    return path


def _replace(f: h5py.File, key: str, **create) -> h5py.Dataset:
    del f[key]
    return f.create_dataset(key, **create)


def _declare_rows(f: h5py.File, rows: int) -> None:
    """Every row key declared with `rows` rows and nothing written (a few bytes on disk), so lengths agree."""
    for key, width in (("observations", 3), ("actions", 2), ("rewards", 0), ("terminals", 0), ("timeouts", 0)):
        _replace(f, key, shape=(rows, width) if width else (rows,), dtype="f4", chunks=(2**16, width) if width
                 else (2**16,))


def _gzip_zeros(f: h5py.File, key: str, rows: int, chunk_rows: int, written_chunks: int) -> None:
    """`key` as (rows, 3) float32 gzip chunks of zeros: one compressed payload, written `written_chunks` times."""
    dset = _replace(f, key, shape=(rows, 3), dtype="f4", chunks=(chunk_rows, 3), compression="gzip")
    payload = zlib.compress(bytes(chunk_rows * 3 * 4), 9)
    for i in range(written_chunks):
        dset.id.write_direct_chunk((i * chunk_rows, 0), payload)


# --------------------------------------------------------------------------- HDF5: declared sizes


MEASURE = """
import resource, sys, time
from rlkit2.data.d4rl import read_d4rl
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
data = read_d4rl(sys.argv[1])
print(len(data), time.perf_counter() - start, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def test_a_key_longer_than_the_others_is_refused_before_it_is_read(tmp_path):
    """1.2 GB of gzip zeros declared for observations beside 50-row keys. Before: read in full (+1.4 GB RSS), then
    refused for its length; now refused from the declared shapes."""
    path = _d4rl(tmp_path / "long.hdf5", lambda f: _gzip_zeros(f, "observations", 10**8, 10**6, 20))
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"long.hdf5: 'actions' has 50 rows but 'observations' has 100000000"):
        read_d4rl(path)
    assert time.perf_counter() - start < 1.0


def test_a_huge_unused_key_is_never_read(tmp_path):
    """A 5 KB file declaring a 1.5 GB extra dataset (unwritten chunks with a fill value). Before: the reader read
    every key, +1.7 GB RSS and 8 s. Now it loads in a fresh process with its peak RSS barely moving."""
    path = _d4rl(tmp_path / "extra.hdf5", lambda f: f.create_dataset(
        "huge_extra", shape=(400_000, 1000), dtype="f4", chunks=(1000, 1000), fillvalue=1.0))
    assert path.stat().st_size < 100_000
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr
    rows, seconds, rss_mb = out.stdout.split()
    assert int(rows) == 50 and float(seconds) < 2.0 and float(rss_mb) < 100, out.stdout


def test_a_trillion_rows_are_a_data_error_not_a_memory_error(tmp_path):
    """Before: numpy's MemoryError ('Unable to allocate 3.64 TiB')."""
    path = _d4rl(tmp_path / "t.hdf5", lambda f: _declare_rows(f, 10**12))
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"t.hdf5: '/observations' declares shape \(1000000000000, 3\).*10.9 TiB.*"
                                        r"RLKIT2_MAX_DATASET_BYTES"):
        read_d4rl(path)
    assert time.perf_counter() - start < 1.0


def test_a_gzip_bomb_is_refused_by_the_size_limit(tmp_path):
    """24 GB of zeros declared in a ~50 KB file (gzip chunks) for a needed key: refused before reading."""
    def edit(f):
        _declare_rows(f, 2 * 10**9)
        _gzip_zeros(f, "observations", 2 * 10**9, 10**6, 4)

    path = _d4rl(tmp_path / "bomb.hdf5", edit)
    assert path.stat().st_size < 200_000
    with pytest.raises(DataError, match=r"bomb.hdf5: '/observations' declares shape \(2000000000, 3\).*"
                                        r"over the 16.0 GiB limit.*RLKIT2_MAX_DATASET_BYTES=64G"):
        read_d4rl(path)


def test_the_limit_can_be_lowered_and_raised(tmp_path, monkeypatch):
    n = 100_000  # ~2.6 MB of highly compressible rows
    path = _d4rl(tmp_path / "zeros.hdf5", rows=_rows(n), compression="gzip")
    monkeypatch.setenv("RLKIT2_MAX_DATASET_BYTES", "1M")
    with pytest.raises(DataError, match=r"zeros.hdf5: '/observations'.*over the 1.0 MiB limit"):
        read_d4rl(path)
    monkeypatch.setenv("RLKIT2_MAX_DATASET_BYTES", "2M")  # the rows fit one by one, not all together
    with pytest.raises(DataError, match=r"'/\w+'.*after 1.9 MiB already read"):
        read_d4rl(path)
    monkeypatch.setenv("RLKIT2_MAX_DATASET_BYTES", "64MiB")
    assert len(read_d4rl(path)) == n
    monkeypatch.setenv("RLKIT2_MAX_DATASET_BYTES", "lots")
    with pytest.raises(ConfigError, match="RLKIT2_MAX_DATASET_BYTES='lots'"):
        read_d4rl(path)


@pytest.mark.parametrize("payload, pattern", [
    (zlib.compress(bytes(64 * 2**20), 9), r"gzip chunk at \(0,\) that inflates beyond its declared 204 B"),
    (b"not gzip at all", r"corrupt gzip chunk at \(0,\)"),
])
def test_a_chunk_that_inflates_beyond_its_declared_size_is_refused(tmp_path, payload, pattern):
    """A 200-byte dataset whose one gzip chunk inflates to 64 MB. Before: HDF5 inflated all of it (a 400 MB chunk
    took +634 MB RSS) and the reader returned the first 200 bytes as if nothing happened."""
    def edit(f):
        dset = _replace(f, "rewards", shape=(50,), dtype="f4", chunks=(50,), compression="gzip")
        dset.id.write_direct_chunk((0,), payload)

    path = _d4rl(tmp_path / "chunk.hdf5", edit)
    with pytest.raises(DataError, match=f"chunk.hdf5: '/rewards' has a {pattern}"):
        read_d4rl(path)


def test_variable_length_values_are_charged_as_they_are_read(tmp_path, monkeypatch):
    """Their declared size is only the references' (8 bytes each): the 2 MB of strings are charged one by one."""
    def edit(f):
        dset = f.create_dataset("metadata/names", shape=(200,), dtype=h5py.string_dtype(), compression="gzip")
        dset[:] = np.array([b"x" * 10_000] * 200, dtype=object)

    path = _d4rl(tmp_path / "v.hdf5", edit)
    assert len(read_d4rl(path).metadata["names"]) == 200
    monkeypatch.setenv("RLKIT2_MAX_DATASET_BYTES", "1M")
    with pytest.raises(DataError, match=r"v.hdf5: the variable-length values of '/metadata/names' take more than"):
        read_d4rl(path)


def test_a_memory_error_names_the_file_and_key(tmp_path, monkeypatch):
    path = _d4rl(tmp_path / "m.hdf5")

    def no_memory(self, index):
        raise MemoryError

    monkeypatch.setattr(h5py.Dataset, "__getitem__", no_memory)
    with pytest.raises(DataError, match=r"m.hdf5: '/observations' \(shape \(50, 3\), float32\) does not fit"):
        read_d4rl(path)


# --------------------------------------------------------------------------- HDF5: data outside the file


def _external_storage(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET!!" * 100)
    return lambda f: _replace(f, "rewards", shape=(50,), dtype="f4", external=[(str(secret), 0, 200)])


def _external_link(tmp_path):
    with h5py.File(tmp_path / "other.hdf5", "w") as g:
        g["rewards"] = np.ones(50, np.float32)

    def edit(f):
        del f["rewards"]
        f["rewards"] = h5py.ExternalLink(str(tmp_path / "other.hdf5"), "/rewards")
    return edit


def _virtual(tmp_path):
    with h5py.File(tmp_path / "source.hdf5", "w") as g:
        g["r"] = np.ones(50, np.float32)

    def edit(f):
        layout = h5py.VirtualLayout(shape=(50,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "source.hdf5"), "r", shape=(50,))
        del f["rewards"]
        f.create_virtual_dataset("rewards", layout)
    return edit


def _soft_out_of_file(tmp_path):
    def edit(f):
        del f["rewards"]
        f["rewards"] = h5py.SoftLink("/nowhere/rewards")
    return edit


def _cycle(tmp_path):
    def edit(f):
        f["infos/loop"] = f["infos"]  # a group hard-linked inside itself
    return edit


OUTSIDE = {
    "external storage": (_external_storage, r"'/rewards' keeps its data in external file\(s\) \['.*secret.bin'\]"),
    "external link": (_external_link, r"'/rewards' is a link to another file \(.*other.hdf5:/rewards\)"),
    "virtual dataset": (_virtual, r"'/rewards' is a virtual dataset"),
    "dangling soft link": (_soft_out_of_file, r"'/rewards' is a soft link to '/nowhere/rewards', which is not"),
    "link cycle": (_cycle, r"'/infos/loop' is reached twice"),
}


@pytest.mark.parametrize("case", sorted(OUTSIDE))
def test_data_outside_the_file_is_refused(tmp_path, case):
    """Before: external storage loaded another file's bytes as rewards, the external link loaded the other file."""
    make, pattern = OUTSIDE[case]
    path = tmp_path / "d.hdf5"
    write_d4rl(path, _rows(), infos={"qpos": np.zeros((50, 2))})
    with h5py.File(path, "a") as f:
        make(tmp_path)(f)
    with pytest.raises(DataError, match=pattern) as info:
        read_d4rl(path)
    assert str(path) in str(info.value)


def test_soft_links_inside_the_file_are_followed(tmp_path):
    def edit(f):
        f["store/rewards"] = np.arange(50, dtype=np.float32)
        del f["rewards"]
        f["rewards"] = h5py.SoftLink("/store/rewards")

    data = read_d4rl(_d4rl(tmp_path / "s.hdf5", edit))
    np.testing.assert_array_equal(data.arrays["rewards"], np.arange(50))


def test_robomimic_refuses_links_and_huge_keys(tmp_path, monkeypatch):
    dones = np.zeros(5)
    dones[-1] = 1
    demo = Demo({"object": np.zeros((5, 4))}, np.zeros((5, 7)), dones, dones)
    path = write_robomimic(tmp_path / "demos.hdf5", [demo, demo], {"env_name": "Lift"})
    with h5py.File(tmp_path / "other.hdf5", "w") as g:
        g["a"] = np.zeros((5, 7))
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
        f["data/demo_1/actions"] = h5py.ExternalLink(str(tmp_path / "other.hdf5"), "/a")
        _replace(f, "data/demo_0/obs/object", shape=(10**10, 4), dtype="f8", chunks=(10**5, 4))
    with pytest.raises(DataError, match=r"demos.hdf5: '/data/demo_0/obs/object' declares shape"):
        read_robomimic(path)
    with pytest.raises(DataError, match=r"demos.hdf5: '/data/demo_1/actions' is a link to another file"):
        read_robomimic(path, obs_keys=[])


def test_minari_refuses_external_storage_and_huge_keys(tmp_path, monkeypatch):
    pytest.importorskip("minari")
    from rlkit2.data.minari_io import read_minari, write_minari

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("Hopper-v5")
    t = 5
    episode = {"observations": np.zeros((t + 1, 11)), "actions": np.zeros((t, 3)), "rewards": np.zeros(t),
               "terminations": np.eye(t)[-1].astype(bool), "truncations": np.zeros(t, bool)}
    root = write_minari("ns/d-v0", [episode], env.observation_space, env.action_space)
    (tmp_path / "secret.bin").write_bytes(bytes(100))
    with h5py.File(root / "data" / "main_data.hdf5", "a") as f:
        _replace(f, "episode_0/rewards", shape=(t,), dtype="f8", external=[(str(tmp_path / "secret.bin"), 0, 40)])
    with pytest.raises(DataError, match=r"ns/d-v0/data/main_data.hdf5: '/episode_0/rewards' keeps its data in ext"):
        read_minari("ns/d-v0")
    with h5py.File(root / "data" / "main_data.hdf5", "a") as f:
        _replace(f, "episode_0/rewards", shape=(10**11,), dtype="f8", chunks=(10**6,))
    with pytest.raises(DataError, match=r"'/episode_0/rewards' declares shape \(100000000000,\)"):
        read_minari("ns/d-v0")
    (root / "data" / "metadata.json").write_text("[" * 100_000)
    with pytest.raises(DataError, match=r"ns/d-v0/data/metadata.json: JSON nested too deeply"):
        read_minari("ns/d-v0")


# --------------------------------------------------------------------------- JSONL


def _read_prompts(path):
    return read_jsonl_field(str(path), "document")


READERS = {"preference pairs": load_preference_pairs, "prompts": _read_prompts, "metrics": read_metrics}
GOOD_LINE = {"preference pairs": {"prompt": "p", "chosen": "a", "rejected": "b"}, "prompts": {"document": "d"},
             "metrics": {"step": 1}}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("bad, pattern", [
    (b"[" * 200_000 + b"\n", r":2: JSON nested too deeply"),  # before: RecursionError
    (b'{"a": "\xff"}\n', r":2: not UTF-8 text \(invalid start byte at byte 7\)"),  # before: UnicodeDecodeError
    (b'{"a": ' + b"1" * 5000 + b"}\n", r":2: not valid JSON \(Exceeds the limit"),  # before: a bare ValueError
])
def test_broken_jsonl_lines_name_file_and_line(tmp_path, reader, bad, pattern):
    path = tmp_path / "f.jsonl"
    path.write_bytes(json.dumps(GOOD_LINE[reader]).encode() + b"\n" + bad + b"\n")
    with pytest.raises(DataError, match=pattern) as info:
        READERS[reader](path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_an_over_long_line_is_refused_without_reading_it(tmp_path, monkeypatch, reader):
    """A 32 MB line under a 1 KiB cap: refused, with at most a few KB held (before: the whole line, and 4x it)."""
    path = tmp_path / "long.jsonl"
    with open(path, "wb") as f:
        f.write(json.dumps(GOOD_LINE[reader]).encode() + b"\n" + b'{"document": "' + b"x" * (32 * 2**20))
    monkeypatch.setenv("RLKIT2_MAX_JSON_BYTES", "1K")
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"long.jsonl:2: line longer than 1.0 KiB.*RLKIT2_MAX_JSON_BYTES"):
            READERS[reader](path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_a_line_at_the_cap_is_read(tmp_path, monkeypatch):
    line = json.dumps({"document": "x" * 1000}).encode()
    (tmp_path / "p.jsonl").write_bytes(line + b"\n" + line)
    monkeypatch.setenv("RLKIT2_MAX_JSON_BYTES", str(len(line)))
    assert len(read_jsonl_field(str(tmp_path / "p.jsonl"), "document")) == 2
    monkeypatch.setenv("RLKIT2_MAX_JSON_BYTES", str(len(line) - 1))
    with pytest.raises(DataError, match=r"p.jsonl:1: line longer than"):
        read_jsonl_field(str(tmp_path / "p.jsonl"), "document")


def test_a_torn_last_metrics_line_is_still_dropped(tmp_path):
    (tmp_path / "metrics.jsonl").write_bytes(b'{"step": 1}\n{"step": 2, "x": "\xc3')  # killed mid-character
    with pytest.warns(UserWarning, match="metrics.jsonl:2: ignoring an incomplete last line"):
        assert read_metrics(tmp_path) == [{"step": 1}]
