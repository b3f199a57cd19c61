"""SAC: soft actor-critic (online), the default behaviour-policy trainer for dataset generation."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.sac.config import SACConfig
from rlkit2.agents.sac.learner import SACLearner
from rlkit2.config import store
from rlkit2.registry import Agent, EnvSpec, register_agent


def make_agent(config: SACConfig, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    learner = SACLearner(config, spec, replay)
    policy = TorchPolicyActor(learner.actor.mode, action_low=spec.action_low, action_high=spec.action_high)
    explorer = TorchPolicyActor(lambda obs: learner.actor(obs)[0], action_low=spec.action_low,
                                action_high=spec.action_high)
    return Agent(learner, policy, explorer)


store("sac_schema", SACConfig, group="agent")
register_agent("sac", SACConfig, "control", make_agent, offline=False)

__all__ = ["SACConfig", "SACLearner", "make_agent"]
