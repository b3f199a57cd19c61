"""A short RL run raises a toy reward ("say paris"); RLOO too; the runner and its checkpoints work."""

from __future__ import annotations

import pytest
import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

from rlkit2.agents.ppo_lm.builder import make_agent
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.core import ConfigError
from rlkit2.lm.generation import GenerationConfig
from rlkit2.lm.models import LMConfig


def toy_learner(algo="ppo", k=1, seed=0, **kw):
    torch.manual_seed(seed)
    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}), seed)
    cfg = PpoLmConfig(model=LMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                      generation=GenerationConfig(max_new_tokens=6), algo=algo, samples_per_prompt=k,
                      prompts_per_step=32 // k, minibatch_size=16, lr=3e-3 if algo == "ppo" else 2e-3, kl_coef=0.01,
                      **kw)
    return make_agent(cfg, env, seed=seed).learner


def mean_score(learner, n=3):
    return sum(float(learner.step()["train/score"]) for _ in range(n)) / n


def test_ppo_raises_toy_reward():
    learner = toy_learner("ppo")
    before = mean_score(learner)
    for _ in range(14):
        m = learner.step()
    after = mean_score(learner)
    assert after > before + 0.3, (before, after)
    assert float(m["train/kl"]) > 0  # it moved away from the reference, and the KL is measured
    for key in ("train/value_loss", "train/policy_loss", "train/clipfrac", "train/kl_coef"):
        assert torch.isfinite(torch.as_tensor(m[key]))


@pytest.mark.slow
def test_rloo_raises_toy_reward():
    learner = toy_learner("rloo", k=4)
    before = mean_score(learner)
    for _ in range(20):
        learner.step()
    assert mean_score(learner) > before + 0.3


def test_reference_stays_frozen_and_kl_starts_at_zero():
    learner = toy_learner("ppo")
    ref0 = {k: v.clone() for k, v in learner.reference.state_dict().items()}
    m = learner.step()
    assert float(m["train/kl"]) == pytest.approx(0.0, abs=1e-4)  # policy == reference before the first update
    learner.step()
    assert all(torch.equal(v, learner.reference.state_dict()[k]) for k, v in ref0.items())


def test_state_dict_resume_gives_identical_next_step(tmp_path):
    from rlkit2 import checkpoint

    a = toy_learner("ppo", seed=1)
    a.step()
    checkpoint.save(a.state_dict(), tmp_path / "ppo.pt")  # the one checkpoint path (no aliasing of live tensors)
    b = toy_learner("ppo", seed=2)
    b.load_state_dict(checkpoint.load(tmp_path / "ppo.pt"))
    torch.manual_seed(5)
    ma = a.step()
    torch.manual_seed(5)
    mb = b.step()
    assert float(ma["train/loss"]) == pytest.approx(float(mb["train/loss"]), rel=1e-5)


def test_config_errors():
    with pytest.raises(ConfigError, match="samples_per_prompt >= 2"):
        toy_learner("rloo", k=1)
    with pytest.raises(ConfigError, match="agent.algo='a2c'"):
        toy_learner("a2c")


def _compose(overrides):
    from hydra import compose, initialize_config_module

    import rlkit2.train as T

    T.register_schemas()
    with initialize_config_module("rlkit2.conf", version_base="1.3"):
        return compose("config", overrides=["experiment=rlhf_toy", "trainer.log_every=1", "trainer.eval_every=2",
                                            "trainer.eval_episodes=4", "trainer.checkpoint_every=2",
                                            "trainer.progress=false", "trainer.plot=false", "logger.console=false",
                                            "agent.model.hidden_size=32", "agent.prompts_per_step=8",
                                            "agent.minibatch_size=8", *overrides])


def test_runner_resume_reproduces_the_uninterrupted_run(tmp_path):
    import rlkit2.train as T
    from rlkit2.logging import read_metrics

    T.run(_compose(["trainer.total_steps=4"]), tmp_path / "a")
    T.run(_compose(["trainer.total_steps=2"]), tmp_path / "b")
    T.run(_compose(["trainer.total_steps=4", "resume=true"]), tmp_path / "b")
    a = [r for r in read_metrics(tmp_path / "a") if "train/loss" in r]
    b = [r for r in read_metrics(tmp_path / "b") if "train/loss" in r]
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert b[-1]["train/loss"] == pytest.approx(a[-1]["train/loss"], rel=1e-5)


def test_runner_through_hydra(tmp_path):
    from hydra import compose, initialize_config_module

    import rlkit2.train as T
    from rlkit2.logging import read_metrics

    T.register_schemas()
    with initialize_config_module("rlkit2.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment=rlhf_toy", "trainer.total_steps=2", "trainer.log_every=1",
                                           "trainer.eval_every=2", "trainer.eval_episodes=4",
                                           "trainer.checkpoint_every=2", "trainer.progress=false",
                                           "trainer.plot=false", "logger.console=false", "agent.model.hidden_size=32",
                                           "agent.prompts_per_step=8", "agent.minibatch_size=8"])
    final = T.run(cfg, tmp_path)
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows if "train/score" in r] == [1, 2]
    assert "rollout/true_consistency" in rows[0]
    assert {"eval/return", "eval/success_rate", "eval/true_consistency", "eval/kl"} <= set(final)
    assert (tmp_path / "checkpoints").is_dir() and any((tmp_path / "checkpoints").glob("step_*.pt"))
