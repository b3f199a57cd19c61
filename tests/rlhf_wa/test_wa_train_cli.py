"""`rlkit2-train agent=warp|jbond`: the lm runner builds each agent from its own config and builder."""

from __future__ import annotations

import pytest

from rlkit2.logging import read_metrics

TINY = ["agent.model.hidden_size=32", "agent.model.num_layers=1", "agent.model.num_heads=2",
        "agent.model.num_kv_heads=1", "agent.model.intermediate_size=64", "agent.generation.max_new_tokens=6",
        "agent.prompts_per_step=4", "env=text_synthetic", "reward=keyword", "trainer.total_steps=4",
        "trainer.log_every=1", "trainer.eval_every=4", "trainer.eval_episodes=4", "trainer.checkpoint_every=2",
        "trainer.progress=false", "trainer.plot=false", "trainer.threads=1", "logger.console=false"]


@pytest.mark.parametrize("agent,extra", [("warp", ["agent.steps_per_run=1", "agent.num_policies=2"]),
                                         ("jbond", [])])
def test_train_entry_point_runs_and_checkpoints(tmp_path, agent, extra):
    from rlkit2 import checkpoint
    from rlkit2.train import compose, run

    cfg = compose([f"agent={agent}", *TINY, *extra])
    final = run(cfg, tmp_path)
    assert "eval/return" in final and "eval/kl" in final
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows if "train/loss" in r] == [1, 2, 3, 4]
    if agent == "warp":
        assert max(r.get("warp/merged", 0.0) for r in rows) == 1.0  # 4 steps = 2 iterations of 2 one-step runs
    ck = checkpoint.latest_valid(tmp_path / "checkpoints")
    assert ck is not None and ck[1]["step"] == 4
