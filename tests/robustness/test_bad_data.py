"""Bad data is refused before training with an error naming the file and the problem.

D4RL files go through the real entry point (`rlkit2.train.run`, what `rlkit2-train` calls); robomimic and
JSONL prompt files through their readers (their runners call exactly these). The D4RL reader's own
validation is tested key by key in tests/data/test_d4rl_io.py.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from rlkit2.envs.text import read_jsonl_field

from rlkit2.core import DataError
from rlkit2.data import read_d4rl
from rlkit2.data.robomimic import Demo, read_robomimic, to_transitions
from rlkit2.data.robomimic_writer import write_robomimic
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import offline_args


def _raw(path, arrays):
    """Write arrays as-is (no validation), like a foreign tool would."""
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v)
    return path


def _rows(hopper_file):
    return {k: np.array(v) for k, v in read_d4rl(hopper_file).arrays.items()}


def _no_flags(r, n=1100):
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(n, 11)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, 3)).astype(np.float32), "rewards": np.ones(n, np.float32),
            "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}


CASES = {
    "missing key": (lambda r: {k: v for k, v in r.items() if k != "timeouts"}, "missing key.*'timeouts'"),
    "string rewards": (lambda r: r.update(rewards=np.array([b"x"] * len(r["rewards"]))) or r,
                       "'rewards' has dtype"),
    "actions rank 3": (lambda r: r.update(actions=r["actions"][:, :, None]) or r, "'actions' has shape .*rank 3"),
    "length mismatch": (lambda r: r.update(rewards=r["rewards"][:-5]) or r, "'rewards' has 595 rows"),
    "NaN observation": (lambda r: r["observations"].__setitem__((7, 2), np.nan) or r,
                        "'observations' has 1 NaN/inf value.*\\(7, 2\\)"),
    "inf reward": (lambda r: r["rewards"].__setitem__(9, np.inf) or r, "'rewards' has 1 NaN/inf"),
    "empty": (lambda r: {k: v[:0] for k, v in r.items()}, "empty dataset"),
    "wrong env width": (lambda r: r.update(observations=r["observations"][:, :5]) or r,
                        "observations have width 5 but env Hopper-v5 observes 11"),
    "flags not 0/1": (lambda r: r.update(terminals=np.full(len(r["terminals"]), 3)) or r, "values other than 0/1"),
    "no terminal, no timeout": (_no_flags, "one episode of 1100 steps with no terminal or timeout"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_d4rl_file_is_refused_before_training(tmp_path, hopper_file, case):
    mutate, pattern = CASES[case]
    path = _raw(tmp_path / "bad.hdf5", mutate(_rows(hopper_file)))
    with pytest.raises(DataError, match=pattern) as info:
        run(compose_config(offline_args(path, "trainer.total_steps=10")), tmp_path / "run")
    assert str(path) in str(info.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.95])
def test_truncated_d4rl_file_is_refused(tmp_path, hopper_file, keep):
    blob = hopper_file.read_bytes()
    path = tmp_path / "cut.hdf5"
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        run(compose_config(offline_args(path, "trainer.total_steps=10")), tmp_path / "run")
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- robomimic


def _demo(T: int, seed: int) -> Demo:
    r = np.random.default_rng(seed)
    obs = {"object": r.normal(size=(T + 1, 4)), "robot0_eef_pos": r.normal(size=(T + 1, 3))}
    dones = np.zeros(T)
    dones[-1] = 1
    return Demo({k: v[:-1] for k, v in obs.items()}, r.uniform(-1, 1, (T, 7)), dones, dones,
                {k: v[1:] for k, v in obs.items()})


def _robomimic(tmp_path, edit=None):
    path = write_robomimic(tmp_path / "demos.hdf5", [_demo(6, 0), _demo(5, 1)], {"env_name": "Lift"},
                           masks={"train": ["demo_0", "demo_1"]})
    if edit is not None:
        with h5py.File(path, "r+") as f:
            edit(f)
    return path


def _replace(f, key, value):
    del f[key]
    f[key] = value


ROBOMIMIC = {
    "NaN action": (lambda f: f["data/demo_1/actions"].__setitem__((2, 3), np.nan),
                   "demo 'demo_1' field 'actions' has 1 NaN/inf.*\\(2, 3\\)"),
    "inf observation": (lambda f: f["data/demo_0/obs/object"].__setitem__((0, 0), np.inf),
                        "demo 'demo_0' field 'obs/object' has 1 NaN/inf"),
    "string actions": (lambda f: _replace(f, "data/demo_0/actions", np.array([b"a"] * 6)),
                       "'actions' has dtype"),
    "1-d actions": (lambda f: _replace(f, "data/demo_0/actions", np.zeros(6)), "actions have shape \\(6,\\)"),
    "missing dones": (lambda f: f["data/demo_1"].__delitem__("dones"), "demo 'demo_1' has no 'dones'"),
    "missing obs key": (lambda f: f["data/demo_1/obs"].__delitem__("object"), "has no 'object'"),
    "demo is not a group": (lambda f: _replace(f, "data/demo_1", np.zeros(3)), "data/demo_1 is not a demo group"),
    "missing demo": (lambda f: f["data"].__delitem__("demo_1"), "demo 'demo_1'.*missing from data/"),
    "short rewards": (lambda f: _replace(f, "data/demo_0/rewards", np.zeros(4)), "'rewards' has 4 rows"),
}


@pytest.mark.parametrize("case", sorted(ROBOMIMIC))
def test_bad_robomimic_file_names_file_demo_and_problem(tmp_path, case):
    edit, pattern = ROBOMIMIC[case]
    path = _robomimic(tmp_path, edit)
    with pytest.raises(DataError, match=pattern) as info:
        read_robomimic(path, filter_key="train")
    assert str(path) in str(info.value)


def test_robomimic_demos_of_different_widths_are_refused(tmp_path):
    d0, d1 = _demo(4, 0), _demo(4, 1)
    d1.obs["object"] = np.zeros((4, 6))
    d1.next_obs["object"] = np.zeros((4, 6))
    path = write_robomimic(tmp_path / "mixed.hdf5", [d0, d1])
    with pytest.raises(DataError, match="disagree on .* widths"):
        to_transitions(read_robomimic(path), ["object", "robot0_eef_pos"])


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_robomimic_file(tmp_path, keep):
    path = _robomimic(tmp_path)
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(DataError, match=str(path)):
        read_robomimic(path)


# --------------------------------------------------------------------------- JSONL prompts


@pytest.mark.parametrize("content, pattern", [
    (b'{"document": "a"}\n{"document": "b"\n{"document": "c"}\n', r":2: not valid JSON"),
    (b'{"document": "a"}\n{"document": "b', r":2: not valid JSON"),  # torn last line
    (b'{"document": "a"}\n\n{"text": "b"}\n', r":3: expected an object with a string field 'document'"),
    (b'{"document": 5}\n', r":1: expected an object with a string field 'document'"),
    (b'["document"]\n', r":1: expected an object"),
    (b'{"document": "a"}\n\xff\xfe{"document": "b"}\n', r":2: not UTF-8 text"),
    (b"\n\n", r"has no rows"),
])
def test_broken_jsonl_prompt_file_names_the_line(tmp_path, content, pattern):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as info:
        read_jsonl_field(str(path), "document")
    assert str(path) in str(info.value)


def test_jsonl_prompt_env_refuses_a_broken_file(tmp_path):
    """Through the env the lm runner builds (`env=text_jsonl env.dataset=...`)."""
    from rlkit2.envs.text import TextEnvConfig, TextGenerationEnv

    path = tmp_path / "p.jsonl"
    path.write_text('{"document": "fine"}\n{oops}\n')
    with pytest.raises(DataError, match=f"{path}:2"):
        TextGenerationEnv(TextEnvConfig(dataset=str(path), metric="none"), reward_fn=lambda *a, **k: None)
