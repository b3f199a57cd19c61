"""PPO-style RL for language policies (Roit et al. 2023's entailment-feedback recipe), with RLOO/REINFORCE."""

from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
from rlkit2.config import store
from rlkit2.registry import register_agent


def build(config: PpoLmConfig, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """Family "lm": the runner (rlkit2.lm.trainer) builds the learner; see rlkit2.lm.trainer.build_learner."""
    from rlkit2.lm.trainer import build_learner

    return build_learner(config, *args, **kwargs)


store("ppo_lm_schema", PpoLmConfig, group="agent")
register_agent("ppo_lm", PpoLmConfig, "lm", build, offline=False)

__all__ = ["PolicyGradientLearner", "PpoLmConfig"]
