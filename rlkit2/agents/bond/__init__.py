"""BOND / J-BOND: Best-of-N distillation with the Jeffreys divergence (Sessa et al., 2024); Best-of-N actor."""

from rlkit2.agents.bond.best_of_n import BestOfNActor, document_from_prompt
from rlkit2.agents.bond.builder import make_agent
from rlkit2.agents.bond.config import JBondConfig
from rlkit2.agents.bond.learner import JBondLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("jbond_schema", JBondConfig, group="agent")
register_agent("jbond", JBondConfig, "lm", make_agent, offline=False)

__all__ = ["BestOfNActor", "JBondConfig", "JBondLearner", "document_from_prompt", "make_agent"]
