"""The jbond builder: the policy (no value head) and its frozen reference, as ppo_lm builds them, and the
JBondLearner (its EMA anchor starts at the reference), returned as an `Agent`."""

from __future__ import annotations

import types
from typing import Any

from rlkit2.agents.bond.config import JBondConfig
from rlkit2.agents.bond.learner import JBondLearner
from rlkit2.agents.ppo_lm.builder import build_policy, build_tokenizer, language_agent
from rlkit2.config import to_config
from rlkit2.core import Agent


def make_agent(config: Any, env: Any, replay: Any = None, seed: int = 0, *, tokenizer: Any | None = None,
               reward_fn: Any = None, model: Any = None) -> Agent:
    """Family "lm": the JBondLearner on text env `env` (`replay`: unused), its greedy actor and its sampling
    actor; `tokenizer`, `reward_fn` and `model` as for ppo_lm."""
    cfg = to_config(config, JBondConfig)
    shim: Any = types.SimpleNamespace(model=cfg.model, init_checkpoint=cfg.init_checkpoint, algo="jbond")
    tokenizer = tokenizer if model is not None else tokenizer or build_tokenizer(shim)
    policy, reference = build_policy(shim, tokenizer, seed, lm=model)
    learner = JBondLearner(cfg, policy, reference, tokenizer, env, reward_fn=reward_fn, seed=seed)
    return language_agent("jbond", cfg, learner)
