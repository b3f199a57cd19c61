"""The ppo_lm builder: tokenizer, policy (+ value head), frozen reference (a copy of the initial policy, or of
`agent.init_checkpoint`) and the PolicyGradientLearner, returned as an `Agent` (`language_agent`). WARP and BOND
build their policies and agents with the same pieces."""

from __future__ import annotations

import copy
from typing import Any

from rlkit2 import checkpoint as ckpt
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
from rlkit2.config import to_config
from rlkit2.core import Agent, ConfigError
from rlkit2.lm.generation import LMActor
from rlkit2.lm.models import PolicyWithValue, build_causal_lm, build_word_tokenizer, freeze, load_tokenizer

__all__ = ["build_policy", "build_tokenizer", "language_agent", "make_agent"]


def build_tokenizer(cfg: PpoLmConfig) -> Any:
    if cfg.model.tokenizer:
        return load_tokenizer(cfg.model.tokenizer)
    if cfg.model.name_or_path:
        return load_tokenizer(cfg.model.name_or_path)
    from rlkit2.lm.synthetic import vocabulary

    return build_word_tokenizer(vocabulary())  # the tiny policies' offline word-level vocabulary


def build_policy(cfg: PpoLmConfig, tokenizer: Any, seed: int = 0) -> tuple[PolicyWithValue, Any]:
    """(policy with value head, frozen reference); both start from `init_checkpoint` when given."""
    lm = build_causal_lm(cfg.model, tokenizer, seed=seed)
    if cfg.init_checkpoint:
        state = ckpt.load(cfg.init_checkpoint)
        if "lm" not in state:
            raise ConfigError(f"agent.init_checkpoint={cfg.init_checkpoint} has no 'lm' state dict")
        lm.load_state_dict(state["lm"])
    reference = freeze(copy.deepcopy(lm))
    policy = PolicyWithValue(lm, value_head=cfg.algo == "ppo")
    return policy, reference


def language_agent(name: str, config: Any, learner: Any) -> Agent:
    """A language learner as an `Agent`: `policy` the greedy LMActor, `explorer` the learner's sampling actor
    (`learner.actor`, whose rollouts it trains on), name and typed config recorded (spec: None)."""
    chat = bool(getattr(getattr(learner, "actor", None), "chat", False))  # encode prompts as the explorer does
    policy = LMActor(learner.policy, learner.tokenizer, config.generation, greedy=True, chat=chat)
    return Agent(learner, policy, getattr(learner, "actor", None), name=name, config=config)


def make_agent(config: Any, env: Any, replay: Any = None, seed: int = 0, *, tokenizer: Any | None = None,
               reward_fn: Any = None) -> Agent:
    """Family "lm": the PolicyGradientLearner on text env `env` (`replay`: unused, the learner keeps its own
    rollouts), its greedy actor and its sampling actor. `reward_fn(documents, responses)` overrides the env's
    reward; `tokenizer` the one `agent.model` names."""
    cfg = to_config(config, PpoLmConfig)
    tokenizer = tokenizer or build_tokenizer(cfg)
    policy, reference = build_policy(cfg, tokenizer, seed)
    learner = PolicyGradientLearner(cfg, policy, reference, tokenizer, env, reward_fn=reward_fn, seed=seed)
    return language_agent("ppo_lm", cfg, learner)
