"""The td3 builder: the TD3 learner, its greedy actor and its exploring actor (Gaussian action noise)."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.td3.config import TD3Config
from rlkit2.agents.td3.learner import TD3Learner
from rlkit2.config import to_config
from rlkit2.core import Agent, EnvSpec


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    config = to_config(config, TD3Config)
    learner = TD3Learner(config, spec, replay)
    policy = TorchPolicyActor(learner.actor, action_low=spec.action_low, action_high=spec.action_high,
                              device=learner.device)
    explorer = TorchPolicyActor(learner.actor, action_low=spec.action_low, action_high=spec.action_high,
                                noise_std=config.exploration_noise, seed=seed, device=learner.device)
    return Agent(learner, policy, explorer)
