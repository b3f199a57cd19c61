"""The poir builder: the POIR learner, its planning actor and its exploring planning actor (online phase)."""

from __future__ import annotations

from typing import Any

from rlkit2.agents.poir.config import POIRConfig
from rlkit2.agents.poir.learner import POIRLearner
from rlkit2.agents.poir.planner import POIRActor
from rlkit2.config import to_config
from rlkit2.core import Agent, EnvSpec


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    learner = POIRLearner(to_config(config, POIRConfig), spec, replay, seed)
    policy = POIRActor(learner, seed=seed)
    explorer = POIRActor(learner, seed=seed + 1, explore=True)
    return Agent(learner, policy, explorer)
