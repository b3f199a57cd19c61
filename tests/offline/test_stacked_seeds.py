"""The stacked-seeds benchmark times what it claims: S seeds in one stacked learner follow S separate TD3+BC runs."""

from __future__ import annotations

import torch

from experiments.bench.stacked_seeds import StackedTD3BC, equivalence_error, synthetic_replay
from rlkit2.agents.td3_bc.config import TD3BCConfig
from rlkit2.agents.td3_bc.learner import TD3BCLearner
from rlkit2.core import EnvSpec


def test_stacked_seeds_make_the_separate_learners_updates():
    config = TD3BCConfig(hidden=[32, 32], batch_size=16)
    replay = synthetic_replay(n=500)
    assert equivalence_error(3, config, replay) < 1e-5


def test_stacked_seeds_draw_their_own_batches_and_learn_apart():
    config = TD3BCConfig(hidden=[16, 16], batch_size=8, normalize_obs=False)
    replay = synthetic_replay(n=200)
    learners = [TD3BCLearner(config, EnvSpec(17, 6), replay, seed=i) for i in range(2)]
    stacked = StackedTD3BC(config, replay, learners)
    before = stacked.actor.out.weight.detach().clone()
    for _ in range(4):
        stacked.step()
    moved = (stacked.actor.out.weight.detach() - before).flatten(1).norm(dim=1)
    assert torch.all(moved > 0) and not torch.allclose(moved[0], moved[1])
