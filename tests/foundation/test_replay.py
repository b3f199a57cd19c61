from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.core import DataError
from rlkit2.replay import TransitionReplay


def _arrays(n: int, obs_dim: int = 3, act_dim: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "next_observations": rng.normal(size=(n, obs_dim)).astype(np.float32),
        "terminals": (np.arange(n) % 7 == 0).astype(np.float32),
    }


def test_ring_buffer_wraps_and_keeps_newest():
    r = TransitionReplay(5, 3, 2)
    for i in range(8):
        r.add(np.full(3, i), np.zeros(2), float(i), np.full(3, i + 1), False)
    assert len(r) == 5
    assert sorted(r.arrays()["rewards"].tolist()) == [3, 4, 5, 6, 7]
    assert r.arrays()["rewards"].tolist() == [3, 4, 5, 6, 7]  # insertion order, oldest first


def test_samples_are_consistent_rows_of_the_dataset():
    a = _arrays(100)
    r = TransitionReplay.from_arrays(a, seed=1)
    b = r.sample(64)
    assert b.observations.shape == (64, 3) and b.actions.shape == (64, 2) and b.rewards.shape == (64,)
    idx = b.rewards.long()  # rewards are the row index
    assert torch.equal(b.observations, torch.from_numpy(a["observations"])[idx])
    assert torch.equal(b.terminals, torch.from_numpy(a["terminals"])[idx])


def test_same_seed_same_batches_and_state_roundtrip():
    a = _arrays(50)
    r1, r2 = TransitionReplay.from_arrays(a, seed=3), TransitionReplay.from_arrays(a, seed=3)
    assert torch.equal(r1.sample(8).rewards, r2.sample(8).rewards)
    state = r1.state_dict()
    expected = r1.sample(8).rewards
    r3 = TransitionReplay(50, 3, 2)
    r3.load_state_dict(state)
    assert torch.equal(r3.sample(8).rewards, expected)


def test_missing_field_and_empty_dataset_are_refused():
    a = _arrays(10)
    del a["terminals"]
    with pytest.raises(DataError, match="terminals"):
        TransitionReplay.from_arrays(a)
    with pytest.raises(DataError, match="empty"):
        TransitionReplay.from_arrays(_arrays(0))


def test_next_actions_are_stored_when_given():
    a = _arrays(20)
    a["next_actions"] = a["actions"] * 2
    r = TransitionReplay.from_arrays(a)
    b = r.sample(16)
    assert b.next_actions is not None
    assert torch.allclose(b.next_actions, b.actions * 2)
