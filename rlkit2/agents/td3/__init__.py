"""TD3: twin delayed deep deterministic policy gradient (online)."""

from __future__ import annotations

from rlkit2.agents.td3.builder import make_agent
from rlkit2.agents.td3.config import TD3Config
from rlkit2.agents.td3.learner import TD3Learner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("td3_schema", TD3Config, group="agent")
register_agent("td3", TD3Config, "control", make_agent, offline=False)

__all__ = ["TD3Config", "TD3Learner", "make_agent"]
