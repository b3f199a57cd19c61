"""IQL (Kostrikov et al., 2021): implicit Q-learning, an offline baseline."""

from __future__ import annotations

from rlkit2.agents.iql.builder import make_agent
from rlkit2.agents.iql.config import IQLConfig
from rlkit2.agents.iql.learner import GaussianPolicy, IQLLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("iql_schema", IQLConfig, group="agent")
register_agent("iql", IQLConfig, "control", make_agent, offline=True)

__all__ = ["GaussianPolicy", "IQLConfig", "IQLLearner", "make_agent"]
