"""TD3+BC (Fujimoto & Gu, 2021): TD3 whose actor adds a behaviour-cloning term; the offline baseline."""

from __future__ import annotations

from rlkit2.agents.td3_bc.builder import make_agent
from rlkit2.agents.td3_bc.config import TD3BCConfig
from rlkit2.agents.td3_bc.learner import TD3BCLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("td3_bc_schema", TD3BCConfig, group="agent")
register_agent("td3_bc", TD3BCConfig, "control", make_agent, offline=True)

__all__ = ["TD3BCConfig", "TD3BCLearner", "make_agent"]
