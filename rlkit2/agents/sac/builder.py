"""The sac builder: the SAC learner, its greedy actor (the Gaussian's mode) and its sampling actor."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.sac.config import SACConfig
from rlkit2.agents.sac.learner import SACLearner
from rlkit2.config import to_config
from rlkit2.core import Agent, EnvSpec


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    learner = SACLearner(to_config(config, SACConfig), spec, replay)
    policy = TorchPolicyActor(learner.actor.mode, action_low=spec.action_low, action_high=spec.action_high,
                              device=learner.device)
    explorer = TorchPolicyActor(lambda obs: learner.actor(obs)[0], action_low=spec.action_low,
                                action_high=spec.action_high, device=learner.device)
    return Agent(learner, policy, explorer)
