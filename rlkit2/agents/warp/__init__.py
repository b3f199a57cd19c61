"""WARP: RL with an EMA anchor, SLERP merging of task vectors, LITI (Ramé et al., 2024)."""

from rlkit2.agents.warp.builder import make_agent
from rlkit2.agents.warp.config import WarpConfig
from rlkit2.agents.warp.learner import WarpLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("warp_schema", WarpConfig, group="agent")
register_agent("warp", WarpConfig, "lm", make_agent, offline=False)

__all__ = ["WarpConfig", "WarpLearner", "make_agent"]
