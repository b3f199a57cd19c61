"""Probes of the files rlkit2 loads and the run dirs it writes, as an attacker and a careless user would try them:
a pickle payload must not run, a file without a valid checksum is not trusted, two runs never share a run dir,
an unloadable checkpoint never crowds out good ones."""

from __future__ import annotations

import hashlib
import io
import pickle

import numpy as np
import pytest
import torch

import rlkit2
from rlkit2 import checkpoint as ckpt
from rlkit2 import rundir
from rlkit2.core import ConfigError
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import offline_args


class _Payload:
    """What a hostile file carries: unpickling it creates `marker` (stands for any code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_file(path, marker, state=None) -> None:
    """A torch file whose pickle runs code, with a matching checksum file (whoever writes one writes both)."""
    buf = io.BytesIO()
    torch.save({**(state or {}), "format": "rlkit2-policy-v1", "policy": _Payload(marker)}, buf)
    path.write_bytes(buf.getvalue())
    rehash_ok = ckpt.rehash(path)
    assert rehash_ok.is_file()


def _tiny_agent():
    data = {"observations": np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32),
            "actions": np.random.default_rng(1).uniform(-1, 1, size=(64, 2)).astype(np.float32),
            "rewards": np.zeros(64, np.float32), "terminals": np.zeros(64, np.float32)}
    data["next_observations"] = data["observations"]
    return rlkit2.make("td3_bc", rlkit2.EnvSpec(3, 2), data, hidden=[16, 16], batch_size=16)


def test_a_hostile_policy_file_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    _hostile_file(tmp_path / "policy.pt", marker)
    with pytest.raises(rlkit2.CheckpointError, match="pickled Python objects.*convert"):
        rlkit2.load_policy(tmp_path / "policy.pt")
    with pytest.raises(rlkit2.CheckpointError):
        rlkit2.load_policy(tmp_path)  # the run-dir form too
    assert not marker.exists()


def test_a_hostile_checkpoint_does_not_run_on_resume(tmp_path, hopper_file):
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    _hostile_file(ckpt.checkpoint_path(run_dir / "checkpoints", 500), marker, {"step": 500})
    args = offline_args(hopper_file, "trainer.total_steps=20", "trainer.eval_every=1000", "trainer.log_every=10",
                        "trainer.checkpoint_every=10")
    with pytest.raises(rlkit2.CheckpointError, match="pickled"):  # resume=<file>: refused
        run(compose_config([*args, f"resume={ckpt.checkpoint_path(run_dir / 'checkpoints', 500)}"]), tmp_path / "b")
    run(compose_config([*args, "resume=true"]), run_dir)  # resume=<own dir>: skipped, moved aside, fresh start
    assert not marker.exists()
    assert (run_dir / "checkpoints" / ckpt.UNLOADABLE_DIR / "step_000000500.pt").is_file()
    assert [s for s, _ in ckpt.list_checkpoints(run_dir / "checkpoints")][-1] == 20


def test_saved_policy_is_weights_and_config_and_verified(tmp_path):
    agent = _tiny_agent()
    for _ in range(5):
        agent.learner.step()
    path = rlkit2.save_policy(agent, tmp_path / "policy.pt", note="x")
    obs = np.ones(3, np.float32)
    np.testing.assert_array_equal(rlkit2.load_policy(path)(obs), agent.policy(obs))
    torch.load(path, weights_only=True)  # plain weights: loads without unpickling any object
    # 8 flipped bytes: refused (before: loaded silently, actions differed by up to 2.0)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 8] = bytes(b ^ 0xFF for b in raw[len(raw) // 2: len(raw) // 2 + 8])
    path.write_bytes(bytes(raw))
    with pytest.raises(rlkit2.CheckpointError, match="corrupted"):
        rlkit2.load_policy(path)
    with pytest.raises(ConfigError, match="Agent returned by rlkit2.make"):
        rlkit2.save_policy(agent.policy, tmp_path / "p2.pt")


@pytest.mark.parametrize("sidecar", [None, "", "not-hex", "abc 12 extra", "\xff\xfe"])
def test_missing_or_malformed_checksum_is_refused_not_a_crash(tmp_path, sidecar):
    good = ckpt.save({"w": torch.ones(2)}, ckpt.checkpoint_path(tmp_path, 1))
    bad = ckpt.save({"w": torch.zeros(2)}, ckpt.checkpoint_path(tmp_path, 2))
    side = ckpt.checksum_path(bad)
    if sidecar is None:
        side.unlink()
    else:
        side.write_bytes(sidecar.encode("latin-1"))
    with pytest.raises(ckpt.CheckpointError, match="checksum"):
        ckpt.load(bad)
    said: list[str] = []
    path, _ = ckpt.latest_valid(tmp_path, say=said.append)
    assert path == good
    assert len(said) == 1 and "step_000000002.pt" in said[0] and "checksum" in said[0]  # which and why


def test_checksum_of_a_weights_only_file_can_be_rewritten_by_hand(tmp_path):
    p = ckpt.save({"w": torch.ones(2)}, tmp_path / "a.pt")
    ckpt.checksum_path(p).unlink()
    assert ckpt.main(["rehash", str(p)]) == 0
    assert float(ckpt.load(p)["w"][0]) == 1.0


def test_older_pickled_checkpoints_convert_once(tmp_path):
    """rlkit2 < 0.2 pickled NumPy arrays (replay, RNG): refused by default, loaded with trust, converted once."""
    old = tmp_path / "step_000000010.pt"
    state = {"step": 10, "replay": {"arrays": {"obs": np.arange(6.0).reshape(3, 2)}}, "rng": np.random.get_state()}
    buf = io.BytesIO()
    torch.save(state, buf)
    old.write_bytes(buf.getvalue())
    ckpt.checksum_path(old).write_text(f"{hashlib.sha256(buf.getvalue()).hexdigest()} {len(buf.getvalue())}\n")
    with pytest.raises(ckpt.CheckpointError, match="python -m rlkit2.checkpoint convert"):
        ckpt.load(old)
    with pytest.warns(UserWarning, match="trust=True"):
        assert ckpt.load(old, trust=True)["step"] == 10
    assert ckpt.main(["convert", str(tmp_path)]) == 0
    new = ckpt.load(old)
    np.testing.assert_array_equal(new["replay"]["arrays"]["obs"], state["replay"]["arrays"]["obs"])
    np.random.set_state(new["rng"])  # the RNG tuple round-trips in a usable form


def test_objects_that_are_not_weights_are_refused_at_save(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="state.x.*not weights-only"):
        ckpt.save({"x": object()}, tmp_path / "a.pt")
    assert not (tmp_path / "a.pt").exists()


def test_a_second_writer_is_refused_with_the_dir_and_the_holder(tmp_path, hopper_file):
    args = offline_args(hopper_file, "trainer.total_steps=10", "trainer.eval_every=1000")
    with rundir.exclusive(tmp_path / "run"):
        with pytest.raises(ConfigError, match=r"run dir .*run is in use by another rlkit2 run \(pid \d+"):
            run(compose_config(args), tmp_path / "run")
    run(compose_config(args), tmp_path / "run")  # released: the next run gets it


def test_a_fresh_run_sets_the_whole_earlier_run_aside(tmp_path, hopper_file):
    base = offline_args(hopper_file, "trainer.eval_every=10", "trainer.log_every=10", "trainer.checkpoint_every=10")
    run(compose_config([*base, "trainer.total_steps=30", "seed=1"]), tmp_path / "run")
    run(compose_config([*base, "trainer.total_steps=20", "seed=2"]), tmp_path / "run")
    steps = [r["step"] for r in read_metrics(tmp_path / "run") if "eval/return" in r]
    assert steps == [10, 20]  # one run's rows, once each (before: both runs' rows in one file)
    aside = tmp_path / "run" / "previous-1"
    assert [r["step"] for r in read_metrics(aside) if "eval/return" in r] == [10, 20, 30]
    assert rlkit2.load_policy(aside)  # the earlier run's policy moved with its checkpoints and metrics


def test_resume_with_every_checkpoint_corrupt_keeps_the_new_good_ones(tmp_path, hopper_file):
    """Before: the corrupt higher-step files stayed and `prune` deleted each new good checkpoint."""
    base = offline_args(hopper_file, "trainer.eval_every=1000", "trainer.checkpoint_every=10",
                        "trainer.keep_checkpoints=1")
    run(compose_config([*base, "trainer.total_steps=40"]), tmp_path / "run")
    for _, p in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints"):
        p.write_bytes(b"\0" * 100)
    # a longer budget from scratch: the broken step-40 file must not outrank or outlive the new ones
    run(compose_config([*base, "trainer.total_steps=30", "resume=true"]), tmp_path / "run")
    found = ckpt.latest_valid(tmp_path / "run" / "checkpoints")
    assert found is not None and found[1]["step"] == 30
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")] == [30]


def test_weights_only_loading_rejects_a_foreign_pickle(tmp_path):
    """A plain pickle (not a torch zip) with a matching checksum: refused, no code run."""
    marker = tmp_path / "pwned"
    p = tmp_path / "x.pt"
    p.write_bytes(pickle.dumps(_Payload(marker)))
    ckpt.rehash(p)
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load(p)
    assert not marker.exists()
