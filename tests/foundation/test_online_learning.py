"""Online SAC really learns Hopper-v5 (slow: ~15k env steps, a few minutes on 2 cores)."""

from __future__ import annotations

import pytest

from experiments.bench.online import random_policy_return
from rlkit2.train import compose, run


@pytest.mark.slow
def test_sac_beats_random_policy_on_hopper(tmp_path):
    cfg = compose(["agent=sac", "env=hopper", "trainer.total_steps=15000", "trainer.learning_starts=2000",
                   "trainer.eval_every=5000", "trainer.eval_episodes=5", "trainer.progress=false",
                   "logger.console=false", "seed=0"])
    final = run(cfg, tmp_path)
    random_return = random_policy_return("Hopper-v5")
    assert final["eval/return"] > random_return + 150, (final["eval/return"], random_return)
