"""CQL (Kumar et al., 2020): conservative Q-learning on SAC, the third offline baseline."""

from __future__ import annotations

from rlkit2.agents.cql.builder import make_agent
from rlkit2.agents.cql.config import CQLConfig
from rlkit2.agents.cql.learner import CQLLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("cql_schema", CQLConfig, group="agent")
register_agent("cql", CQLConfig, "control", make_agent, offline=True)

__all__ = ["CQLConfig", "CQLLearner", "make_agent"]
