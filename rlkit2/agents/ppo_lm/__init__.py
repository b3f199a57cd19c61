"""PPO-style RL for language policies (Roit et al. 2023's entailment-feedback recipe), with RLOO/REINFORCE."""

from rlkit2.agents.ppo_lm.builder import make_agent
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

store("ppo_lm_schema", PpoLmConfig, group="agent")
register_agent("ppo_lm", PpoLmConfig, "lm", make_agent, offline=False)

__all__ = ["PolicyGradientLearner", "PpoLmConfig", "make_agent"]
