"""Hypothesis fuzzing of the readers not fuzzed elsewhere (robomimic, Minari, JSONL prompts): any input either
loads into consistent, finite arrays or raises rlkit2's DataError - never an unrelated exception.
(The D4RL reader is fuzzed in tests/data/test_d4rl_fuzz.py.)"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rlkit2.envs.text import read_jsonl_field

from rlkit2.core import DataError
from rlkit2.data.robomimic import read_robomimic, to_transitions

FUZZ = settings(max_examples=int(os.environ.get("RLKIT2_FUZZ_EXAMPLES", 40)), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
DTYPES = (np.float32, np.float64, np.int64, np.uint8, np.bool_, "S2")
VALUES = (0.0, 1.0, -1.0, 0.5, 3.0, np.nan, np.inf)


@st.composite
def arrays(draw, rows: int, max_rank: int = 3):
    """An array of `rows` rows (sometimes another length), a random rank, width, dtype and values."""
    n = rows if draw(st.integers(0, 5)) else draw(st.integers(0, 6))
    rank = draw(st.integers(0, max_rank))
    shape = (n, *[draw(st.integers(0, 3)) for _ in range(rank - 1)]) if rank else ()
    dtype = draw(st.sampled_from(DTYPES))
    size = int(np.prod(shape))
    if dtype == "S2":
        return np.array([b"ab"] * size, dtype="S2").reshape(shape)
    raw = np.array(draw(st.lists(st.sampled_from(VALUES), min_size=size, max_size=size)), np.float64)
    if np.dtype(dtype).kind in "biu":
        raw = np.nan_to_num(raw, nan=0.0, posinf=1.0)
    return raw.astype(dtype).reshape(shape)


# --------------------------------------------------------------------------- robomimic


@st.composite
def robomimic_files(draw):
    spec: dict = {"data": {}, "mask": None, "attrs": draw(st.sampled_from(['{"env_name": "Lift"}', "{broken", None]))}
    for i in range(draw(st.integers(0, 3))):
        t = draw(st.integers(0, 5))
        demo = {}
        for key in ("actions", "rewards", "dones", "states"):
            if draw(st.integers(0, 7)):  # ~1/8: key missing
                demo[key] = draw(arrays(t, 2 if key in ("rewards", "dones") else 3))
        for group in ("obs", "next_obs"):
            if draw(st.integers(0, 5)):
                demo[group] = {k: draw(arrays(t)) for k in draw(st.sets(st.sampled_from(("a", "b")), max_size=2))}
        spec["data"][f"demo_{i}"] = demo if draw(st.integers(0, 9)) else draw(arrays(t))  # ~1/10: not a group
    if draw(st.booleans()):
        spec["mask"] = {"train": [f"demo_{i}".encode() for i in draw(st.lists(st.integers(0, 3), max_size=3))]}
    return spec


def _write_robomimic_spec(path: Path, spec: dict) -> None:
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        if spec["attrs"] is not None:
            data.attrs["env_args"] = spec["attrs"]
        for name, demo in spec["data"].items():
            if isinstance(demo, np.ndarray):
                data.create_dataset(name, data=demo)
                continue
            g = data.create_group(name)
            for key, value in demo.items():
                if isinstance(value, dict):
                    og = g.create_group(key)
                    for k, v in value.items():
                        og.create_dataset(k, data=v)
                else:
                    g.create_dataset(key, data=value)
        if spec["mask"] is not None:
            for k, names in spec["mask"].items():
                f.create_dataset(f"mask/{k}", data=np.array(names, dtype="S8") if names else np.zeros(0, "S8"))


@FUZZ
@given(robomimic_files(), st.sampled_from((None, "train", "valid")), st.sampled_from((None, ["a"], ["a", "b"])))
def test_robomimic_reader_loads_or_raises_dataerror(spec, filter_key, obs_keys):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "demos.hdf5"
        _write_robomimic_spec(path, spec)
        try:
            ds = read_robomimic(path, filter_key=filter_key, obs_keys=obs_keys)
            keys = obs_keys or sorted(ds.demos[0].obs)
            arrays_ = to_transitions(ds, keys)
        except DataError as e:
            assert str(path) in str(e) or "demo" in str(e)
            return
    assert ds.demos and all(len(d) > 0 for d in ds.demos)
    n = sum(len(d) for d in ds.demos)
    for k, v in arrays_.items():
        assert len(v) == n, k
        assert v.dtype == np.float32 and np.isfinite(v).all(), k
    assert arrays_["actions"].ndim == 2 and arrays_["observations"].ndim == 2


# --------------------------------------------------------------------------- Minari


@st.composite
def minari_episodes(draw):
    obs_dim, act_dim = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    episodes = []
    for _ in range(draw(st.integers(0, 3))):
        t = draw(st.integers(0, 4))
        ep = {}
        for key, rows, wide in (("observations", t + 1, obs_dim), ("actions", t, act_dim), ("rewards", t, 0),
                                ("terminations", t, 0), ("truncations", t, 0)):
            if not draw(st.integers(0, 9)):
                continue  # ~1/10: key missing
            if draw(st.integers(0, 3)):  # mostly well-shaped, with random values and dtypes
                shape = (rows, wide) if wide else (rows,)
                value = np.array(draw(st.lists(st.sampled_from(VALUES), min_size=int(np.prod(shape)),
                                               max_size=int(np.prod(shape)))), np.float64).reshape(shape)
                ep[key] = value.astype(np.bool_) if key in ("terminations", "truncations") and \
                    np.isfinite(value).all() else value
            else:
                ep[key] = draw(arrays(rows))
        episodes.append(ep)
    return obs_dim, act_dim, episodes


def _write_minari_raw(root: Path, dataset_id: str, obs_dim: int, act_dim: int, episodes: list[dict]) -> None:
    """Minari 0.5's layout with whatever the episodes hold (write_minari itself insists on every key)."""
    from minari.serialization import serialize_space

    data = root / dataset_id / "data"
    data.mkdir(parents=True)
    with h5py.File(data / "main_data.hdf5", "w", track_order=True) as f:
        for i, ep in enumerate(episodes):
            g = f.create_group(f"episode_{i}")
            g.attrs["id"] = i
            g.attrs["total_steps"] = int(np.size(ep.get("rewards", ())))
            for k, v in ep.items():
                g.create_dataset(k, data=v)
    meta = {"dataset_id": dataset_id, "total_episodes": len(episodes),
            "total_steps": sum(int(np.size(ep.get("rewards", ()))) for ep in episodes), "data_format": "hdf5",
            "observation_space": serialize_space(gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float64)),
            "action_space": serialize_space(gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)),
            "minari_version": "0.5.0", "dataset_size": 0.0}
    (data / "metadata.json").write_text(json.dumps(meta))


@FUZZ
@given(minari_episodes())
def test_minari_reader_loads_or_raises_dataerror(monkeypatch, drawn):
    pytest.importorskip("minari")
    from rlkit2.data.minari_io import read_minari

    obs_dim, act_dim, episodes = drawn
    with tempfile.TemporaryDirectory() as d:
        monkeypatch.setenv("MINARI_DATASETS_PATH", d)
        _write_minari_raw(Path(d), "fuzz/ds-v0", obs_dim, act_dim, episodes)
        try:
            data = read_minari("fuzz/ds-v0")
        except DataError as e:
            assert "fuzz/ds-v0" in str(e)
            return
    rows = data.arrays
    n = len(rows["observations"])
    assert n > 0 and all(len(v) == n for v in rows.values())
    assert rows["observations"].shape[1] == obs_dim and rows["actions"].shape[1] == act_dim
    for k in ("observations", "next_observations", "actions", "rewards"):
        assert np.isfinite(rows[k]).all(), k


# --------------------------------------------------------------------------- JSONL prompts

_LINES = st.one_of(
    st.builds(lambda s: json.dumps({"document": s}), st.text(max_size=20)),
    st.builds(lambda s: json.dumps({"other": s}), st.text(max_size=5)),
    st.builds(json.dumps, st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.none())),
    st.text(max_size=20),
)


@FUZZ
@given(st.lists(st.one_of(_LINES.map(lambda s: s.encode()), st.binary(max_size=12)), max_size=6),
       st.booleans())
def test_jsonl_reader_loads_or_raises_dataerror(lines, trailing_newline):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.jsonl"
        path.write_bytes(b"\n".join(lines) + (b"\n" if trailing_newline else b""))
        try:
            docs = read_jsonl_field(str(path), "document")
        except DataError as e:
            assert str(path) in str(e)
            return
    assert docs and all(isinstance(x, str) for x in docs)
    assert os.path.basename(str(path)) == "p.jsonl"
