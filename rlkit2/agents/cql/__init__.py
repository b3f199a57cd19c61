"""CQL (Kumar et al., 2020): conservative Q-learning on SAC, the third offline baseline."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.cql.config import CQLConfig
from rlkit2.agents.cql.learner import CQLLearner
from rlkit2.agents.td3_bc.common import coerce_config
from rlkit2.config import store
from rlkit2.registry import Agent, EnvSpec, register_agent


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    config = coerce_config(config, CQLConfig)
    learner = CQLLearner(config, spec, replay, seed)
    policy = TorchPolicyActor(learner.policy_module, action_low=spec.action_low, action_high=spec.action_high)
    return Agent(learner, policy, None)


store("cql_schema", CQLConfig, group="agent")
register_agent("cql", CQLConfig, "control", make_agent, offline=True)

__all__ = ["CQLConfig", "CQLLearner", "make_agent"]
