"""IQL (Kostrikov et al., 2021): implicit Q-learning, an offline baseline."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.iql.config import IQLConfig
from rlkit2.agents.iql.learner import GaussianPolicy, IQLLearner
from rlkit2.agents.td3_bc.common import coerce_config
from rlkit2.config import store
from rlkit2.registry import Agent, EnvSpec, register_agent


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    config = coerce_config(config, IQLConfig)
    learner = IQLLearner(config, spec, replay, seed)
    policy = TorchPolicyActor(learner.policy_module, action_low=spec.action_low, action_high=spec.action_high)
    return Agent(learner, policy, None)


store("iql_schema", IQLConfig, group="agent")
register_agent("iql", IQLConfig, "control", make_agent, offline=True)

__all__ = ["GaussianPolicy", "IQLConfig", "IQLLearner", "make_agent"]
