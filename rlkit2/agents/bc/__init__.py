"""BC: behaviour cloning from robomimic-format demonstrations (family "imitation").

Trained offline by `rlkit2.imitation_trainer` on demos loaded into a `TransitionReplay`;
evaluated greedily (the Gaussian head's mode) in the nominal and the shifted env.
"""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.bc.config import BCConfig
from rlkit2.agents.bc.learner import BCLearner, BCPolicy
from rlkit2.config import store
from rlkit2.registry import Agent, EnvSpec, register_agent


def make_agent(config: BCConfig, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    learner = BCLearner(config, spec, replay)
    policy = TorchPolicyActor(learner.policy, action_low=spec.action_low, action_high=spec.action_high)
    return Agent(learner, policy, None)


store("bc_schema", BCConfig, group="agent")
register_agent("bc", BCConfig, "imitation", make_agent, offline=True)

__all__ = ["BCConfig", "BCLearner", "BCPolicy", "make_agent"]
