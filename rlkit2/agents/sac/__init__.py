"""SAC: soft actor-critic (online), the default behaviour-policy trainer for dataset generation."""

from __future__ import annotations

from rlkit2.agents.sac.builder import make_agent
from rlkit2.agents.sac.config import SACConfig
from rlkit2.agents.sac.learner import SACLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("sac_schema", SACConfig, group="agent")
register_agent("sac", SACConfig, "control", make_agent, offline=False)

__all__ = ["SACConfig", "SACLearner", "make_agent"]
