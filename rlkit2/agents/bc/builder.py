"""The bc builder: the BC learner, its greedy actor (the Gaussian head's mode) and, with online fine-tuning,
an exploring actor (the greedy action + clipped Gaussian noise of std `online_noise_std` x the action bound)."""

from __future__ import annotations

from typing import Any

from rlkit2.actors import TorchPolicyActor
from rlkit2.agents.bc.config import BCConfig
from rlkit2.agents.bc.learner import BCLearner
from rlkit2.config import to_config
from rlkit2.core import Agent, EnvSpec


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    learner = BCLearner(to_config(config, BCConfig), spec, replay)
    policy = TorchPolicyActor(learner.policy, action_low=spec.action_low, action_high=spec.action_high,
                              device=learner.device)
    explorer = None
    if learner.config.online_env_steps > 0:
        explorer = TorchPolicyActor(learner.policy, action_low=spec.action_low, action_high=spec.action_high,
                                    noise_std=learner.config.online_noise_std, seed=seed + 1, device=learner.device)
    return Agent(learner, policy, explorer)
