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
from rlkit2.lm.adapters import AdapterDisabled, apply_lora, check_model, enable_gradient_checkpointing, log_once
from rlkit2.lm.fast_decode import unsupported_reason
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


def build_policy(cfg: PpoLmConfig, tokenizer: Any, seed: int = 0, lm: Any = None) -> tuple[PolicyWithValue, Any]:
    """(policy with value head, frozen reference); both start from `init_checkpoint` when given.

    `lm`: an already-built causal LM (`make(..., model=)`) instead of the one `cfg.model` names. The reference is
    a frozen deep copy of the initial LM, or under `model.lora` the same LM with its adapter disabled.
    `model.gradient_checkpointing` is switched on for the policy (not the reference, which never backpropagates).
    """
    if lm is None:
        lm = build_causal_lm(cfg.model, tokenizer, seed=seed)
    else:
        check_model(lm, tokenizer)
    if cfg.init_checkpoint:
        state = ckpt.load(cfg.init_checkpoint)
        if "lm" not in state:
            raise ConfigError(f"agent.init_checkpoint={cfg.init_checkpoint} has no 'lm' state dict")
        lm.load_state_dict(state["lm"])
    lora = cfg.model.lora.r > 0
    reference = None if lora else freeze(copy.deepcopy(lm))
    if cfg.model.gradient_checkpointing:
        enable_gradient_checkpointing(lm)
    if lora:
        lm = apply_lora(lm, cfg.model.lora)
        reference = AdapterDisabled(lm).eval()
    if getattr(getattr(cfg, "generation", None), "kv_decoder", False):  # which forward path, and why, once
        why = unsupported_reason(lm)
        log_once(f"KVDecoder does not run the policy ({why}): the Hugging Face forward does" if why else
                 f"KVDecoder runs the policy ({lm.config.model_type}, float32; tested equal to the Hugging Face "
                 "forward, logits and gradients)")
    policy = PolicyWithValue(lm, value_head=cfg.algo == "ppo")
    return policy, reference


def language_agent(name: str, config: Any, learner: Any) -> Agent:
    """A language learner as an `Agent`: `policy` the greedy LMActor, `explorer` the learner's sampling actor
    (`learner.actor`, whose rollouts it trains on), name and typed config recorded (spec: None)."""
    chat = bool(getattr(getattr(learner, "actor", None), "chat", False))  # encode prompts as the explorer does
    policy = LMActor(learner.policy, learner.tokenizer, config.generation, greedy=True, chat=chat)
    return Agent(learner, policy, getattr(learner, "actor", None), name=name, config=config)


def make_agent(config: Any, env: Any, replay: Any = None, seed: int = 0, *, tokenizer: Any | None = None,
               reward_fn: Any = None, model: Any = None) -> Agent:
    """Family "lm": the PolicyGradientLearner on text env `env` (`replay`: unused, the learner keeps its own
    rollouts), its greedy actor and its sampling actor. `reward_fn(documents, responses)` overrides the env's
    reward; `tokenizer` the one `agent.model` names; `model` an already-built causal LM (with its `tokenizer`)."""
    cfg = to_config(config, PpoLmConfig)
    tokenizer = tokenizer if model is not None else tokenizer or build_tokenizer(cfg)
    policy, reference = build_policy(cfg, tokenizer, seed, lm=model)
    learner = PolicyGradientLearner(cfg, policy, reference, tokenizer, env, reward_fn=reward_fn, seed=seed)
    return language_agent("ppo_lm", cfg, learner)
