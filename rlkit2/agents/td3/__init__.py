"""TD3: twin delayed deep deterministic policy gradient (online)."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.td3.config import TD3Config
from rlkit2.agents.td3.learner import TD3Learner
from rlkit2.config import store
from rlkit2.registry import Agent, EnvSpec, register_agent


def make_agent(config: TD3Config, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    learner = TD3Learner(config, spec, replay)
    policy = TorchPolicyActor(learner.actor, action_low=spec.action_low, action_high=spec.action_high)
    explorer = TorchPolicyActor(learner.actor, action_low=spec.action_low, action_high=spec.action_high,
                                noise_std=config.exploration_noise, seed=seed)
    return Agent(learner, policy, explorer)


store("td3_schema", TD3Config, group="agent")
register_agent("td3", TD3Config, "control", make_agent, offline=False)

__all__ = ["TD3Config", "TD3Learner", "make_agent"]
