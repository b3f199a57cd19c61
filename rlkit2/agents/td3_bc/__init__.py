"""TD3+BC (Fujimoto & Gu, 2021): TD3 whose actor adds a behaviour-cloning term; the offline baseline."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.td3_bc.common import coerce_config
from rlkit2.agents.td3_bc.config import TD3BCConfig
from rlkit2.agents.td3_bc.learner import TD3BCLearner
from rlkit2.config import store
from rlkit2.registry import Agent, EnvSpec, register_agent


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    config = coerce_config(config, TD3BCConfig)
    learner = TD3BCLearner(config, spec, replay, seed)
    policy = TorchPolicyActor(learner.policy_module, action_low=spec.action_low, action_high=spec.action_high)
    return Agent(learner, policy, None)


store("td3_bc_schema", TD3BCConfig, group="agent")
register_agent("td3_bc", TD3BCConfig, "control", make_agent, offline=True)

__all__ = ["TD3BCConfig", "TD3BCLearner", "make_agent"]
