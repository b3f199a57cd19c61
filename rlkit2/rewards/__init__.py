"""Reward functions for RLHF: entailment (NLI), learned reward models, toy/callable, shaping.

Interface: `reward_fn(documents, responses) -> torch.Tensor [B]`; build one from config with
`make_reward(cfg)`; add a kind with `register_reward_kind(kind, ConfigCls, maker)`.
"""

from rlkit2.rewards.base import (
    CallableReward,
    RewardFunction,
    ShapingOptions,
    make_reward,
    register_reward_kind,
)

__all__ = ["CallableReward", "RewardFunction", "ShapingOptions", "make_reward", "register_reward_kind"]
