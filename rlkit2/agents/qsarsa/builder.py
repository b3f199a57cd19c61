"""The Q-sarsa builders: one per registered name (`qsarsa`, `qsarsa_ac`, `qsarsa_ac2`), each the QsarsaACLearner
with its config class (their defaults differ) and its greedy actor (`learner.policy_module`)."""

from __future__ import annotations

from typing import Any

from rlkit2.agents.qsarsa.config import QsarsaAC2Config, QsarsaACConfig, QsarsaConfig
from rlkit2.agents.qsarsa.learner import QsarsaACLearner
from rlkit2.agents.td3_bc.common import offline_agent_builder

make_agent = offline_agent_builder(QsarsaACLearner, QsarsaConfig)  # agent=qsarsa: Qsarsa-AC
make_qsarsa_ac_agent = offline_agent_builder(QsarsaACLearner, QsarsaACConfig)
make_qsarsa_ac2_agent = offline_agent_builder(QsarsaACLearner, QsarsaAC2Config)

# name -> (config class, builder): what __init__ registers
BUILDERS: dict[str, tuple[type, Any]] = {
    "qsarsa_ac": (QsarsaACConfig, make_qsarsa_ac_agent),
    "qsarsa_ac2": (QsarsaAC2Config, make_qsarsa_ac2_agent),
    "qsarsa": (QsarsaConfig, make_agent),
}
