"""Offline BC: behaviour cloning on D4RL-format / Minari datasets (family "control", offline), with TD3+BC's
actor and normalisation, so "does the RL term help?" is a like-for-like question. `agent=bc` is the imitation
family's BC on robomimic demonstrations."""

from __future__ import annotations

from rlkit2.agents.offline_bc.builder import make_agent
from rlkit2.agents.offline_bc.config import OfflineBCConfig
from rlkit2.agents.offline_bc.learner import OfflineBCLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("offline_bc_schema", OfflineBCConfig, group="agent")
register_agent("offline_bc", OfflineBCConfig, "control", make_agent, offline=True)

__all__ = ["OfflineBCConfig", "OfflineBCLearner", "make_agent"]
