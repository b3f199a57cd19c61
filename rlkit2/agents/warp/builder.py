"""The warp builder: tokenizer and policy as ppo_lm builds them, the EMA anchor (the inner learner's reference)
and a frozen SFT copy (what evaluation measures KL against), returned as an `Agent`."""

from __future__ import annotations

import copy
from typing import Any

from rlkit2.agents.ppo_lm.builder import build_policy, build_tokenizer, language_agent
from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
from rlkit2.agents.warp.config import WarpConfig
from rlkit2.agents.warp.learner import WarpLearner
from rlkit2.config import to_config
from rlkit2.core import Agent
from rlkit2.lm.models import freeze


def make_agent(config: Any, env: Any, replay: Any = None, seed: int = 0, *, tokenizer: Any | None = None,
               reward_fn: Any = None, model: Any = None) -> Agent:
    """Family "lm": the WarpLearner on text env `env` (`replay`: unused), its greedy actor and its sampling
    actor; `tokenizer`, `reward_fn` and `model` as for ppo_lm."""
    cfg = to_config(config, WarpConfig)
    tokenizer = tokenizer if model is not None else tokenizer or build_tokenizer(cfg)
    policy, reference = build_policy(cfg, tokenizer, seed, lm=model)
    anchor = copy.deepcopy(reference)  # frozen module whose weights the EMA hook moves
    inner = PolicyGradientLearner(cfg, policy, anchor, tokenizer, env, reward_fn=reward_fn, seed=seed)
    return language_agent("warp", cfg, WarpLearner(cfg, inner, freeze(reference)))
