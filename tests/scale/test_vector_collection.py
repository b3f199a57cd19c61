"""Vectorised online collection stores true last observations at episode ends, not the autoreset ones."""

from __future__ import annotations

import numpy as np
import pytest

from rlkit2 import checkpoint as ckpt
from rlkit2.train import compose, run


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_collection_keeps_terminal_observations(tmp_path, mode):
    cfg = compose(["agent=td3", "env=hopper", "env.num_envs=2", f"env.vectorization={mode}",
                   "agent.hidden=[16]", "agent.batch_size=16",
                   "trainer.total_steps=400", "trainer.learning_starts=400", "trainer.eval_every=400",
                   "trainer.eval_episodes=1", "trainer.progress=false", "logger.console=false", "trainer.plot=false",
                   "trainer.threads=1"])
    run(cfg, tmp_path)
    _, state = ckpt.latest_valid(tmp_path / "checkpoints")
    replay = state["ranks"][0]["replay"]
    assert replay["size"] == 400
    arrays = replay["arrays"]
    ends = arrays["terminals"] > 0
    assert ends.sum() >= 2  # random actions make Hopper fall within a few dozen steps
    z, angle = arrays["next_observations"][ends, 0], arrays["next_observations"][ends, 1]
    # Hopper-v5 terminates when unhealthy: a reset observation (z ~ 1.25, angle ~ 0) here would be a bug.
    assert np.all(~((z > 0.7) & (np.abs(angle) < 0.2)))
    # Within an episode the chain holds: the next row's observation is this row's next observation.
    same = ~ends[:-2:2]
    np.testing.assert_allclose(arrays["observations"][2::2][same], arrays["next_observations"][:-2:2][same])
