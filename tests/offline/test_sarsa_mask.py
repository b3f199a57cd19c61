"""Rows whose next action is unknown (after a timeout) never feed a SARSA bootstrap."""

from __future__ import annotations

import numpy as np
import torch

from rlkit2.agents.qsarsa.losses import sarsa_loss
from rlkit2.replay import TransitionReplay


def test_masked_rows_do_not_change_the_sarsa_loss():
    q = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([[1.5, 2.0, 100.0]])  # row 2's target bootstraps from a made-up a'
    weight = torch.tensor([1.0, 1.0, 0.0])
    assert torch.isclose(sarsa_loss(q, target, weight), torch.tensor(0.25 / 2))
    assert sarsa_loss(q, target) > 1000  # unmasked, the bogus row dominates


def test_replay_carries_the_validity_of_next_actions():
    n = 6
    arrays = {"observations": np.zeros((n, 2), np.float32), "actions": np.zeros((n, 1), np.float32),
              "rewards": np.arange(n, dtype=np.float32), "next_observations": np.zeros((n, 2), np.float32),
              "terminals": np.zeros(n, np.float32), "next_actions": np.zeros((n, 1), np.float32),
              "next_action_valid": np.array([1, 1, 0, 1, 1, 0], np.float32)}
    b = TransitionReplay.from_arrays(arrays).sample(64)
    assert b.next_action_valid is not None
    assert torch.equal(b.next_action_valid, (b.rewards % 3 != 2).float())
