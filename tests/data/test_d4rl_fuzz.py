"""Hypothesis fuzzing of the D4RL reader: any file either loads (and is consistent) or raises DataError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlkit2.core import DataError
from rlkit2.data import read_d4rl, to_transitions

KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")
DTYPES = (np.float32, np.float64, np.float16, np.int32, np.int8, np.uint8, np.bool_, "S3")


@st.composite
def d4rl_like(draw):
    n = draw(st.integers(0, 7))
    arrays = {}
    for key in KEYS:
        if draw(st.integers(0, 9)) == 0:  # ~10%: key missing
            continue
        rows = n if draw(st.integers(0, 9)) else draw(st.integers(0, 8))  # ~10%: wrong length
        rank = draw(st.sampled_from((1, 2, 2, 3))) if key in ("observations", "actions", "next_observations") \
            else draw(st.sampled_from((1, 1, 1, 2, 0)))
        width = draw(st.integers(0, 3))
        shape = {0: (), 1: (rows,), 2: (rows, width), 3: (rows, width, 2)}[rank]
        dtype = draw(st.sampled_from(DTYPES))
        size = int(np.prod(shape))
        if dtype == "S3":
            value = np.array([b"abc"] * size, dtype="S3").reshape(shape)
        else:
            raw = draw(st.lists(st.sampled_from((0.0, 1.0, -1.0, 0.5, 2.0, -3.0, np.nan, np.inf)),
                                min_size=size, max_size=size))
            with np.errstate(invalid="ignore", over="ignore"):
                value = np.nan_to_num(np.array(raw), nan=0, posinf=1, neginf=0).astype(dtype) \
                    if np.dtype(dtype).kind in "biu" else np.array(raw).astype(dtype).reshape(shape)
            value = value.reshape(shape)
        arrays[key] = value
    return arrays


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(d4rl_like(), st.booleans())
def test_reader_loads_or_raises_dataerror(arrays, with_bounds):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.hdf5"
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
        try:
            data = read_d4rl(path, action_low=-1.0 if with_bounds else None, action_high=1.0 if with_bounds else None)
        except DataError as e:
            assert str(path) in str(e)
            return
    # what loads is consistent, finite, and its transitions are well-formed
    n = len(data)
    assert n > 0
    for k, v in data.arrays.items():
        assert len(v) == n, k
    for k in ("observations", "actions", "rewards"):
        assert np.isfinite(data.arrays[k]).all()
    tr = to_transitions(data.arrays)
    m = len(tr["observations"])
    assert all(len(v) == m for v in tr.values())
    assert set(np.unique(tr["terminals"])) <= {0.0, 1.0}
    assert set(np.unique(tr["next_action_valid"])) <= {0.0, 1.0}


@settings(max_examples=15, deadline=None, database=None)
@given(st.binary(min_size=0, max_size=3000), st.integers(0, 4000))
def test_corrupted_bytes_raise_dataerror(noise, cut):
    """A valid file truncated or overwritten with noise is refused with DataError (or still reads fine)."""
    from rlkit2.data import write_d4rl
    from tests.data.helpers_data import episodes_rows

    with tempfile.TemporaryDirectory() as d:
        good = write_d4rl(Path(d) / "g.hdf5", episodes_rows([30, 20], ["terminal", "timeout"]))
        blob = bytearray(good.read_bytes())
        cut = min(cut, len(blob))
        blob[cut:cut + len(noise)] = noise
        bad = Path(d) / "bad.hdf5"
        bad.write_bytes(bytes(blob[: max(cut + len(noise), 1)] if noise else blob[:cut]))
        try:
            data = read_d4rl(bad)
        except DataError:
            return
        assert len(data) > 0
