"""BC: behaviour cloning from robomimic-format demonstrations (family "imitation").

Trained offline by `rlkit2.run.imitation` on demos loaded into a `TransitionReplay`;
evaluated greedily (the Gaussian head's mode) in the nominal and the shifted env.
"""

from __future__ import annotations

from rlkit2.agents.bc.builder import make_agent
from rlkit2.agents.bc.config import BCConfig
from rlkit2.agents.bc.learner import BCLearner, BCPolicy, ImageReplay
from rlkit2.config import store
from rlkit2.registry import register_agent

store("bc_schema", BCConfig, group="agent")
register_agent("bc", BCConfig, "imitation", make_agent, offline=True)

__all__ = ["BCConfig", "BCLearner", "BCPolicy", "ImageReplay", "make_agent"]
