"""Qsarsa-AC and Qsarsa-AC2 ("Offline RL with On-Policy Q-Function Regularization", Shi et al., 2023).

Q_sarsa (estimator.QSarsaLearner) estimates the behaviour policy's Q-function by SARSA-style TD on
the dataset; Qsarsa-AC regularises the TD3+BC critic towards it, Qsarsa-AC2 the critic and the actor.
The regularisers are a documented reconstruction (losses.py). `agent=qsarsa` is Qsarsa-AC.
"""

from __future__ import annotations

from rlkit2.agents.qsarsa.builder import BUILDERS, make_agent
from rlkit2.agents.qsarsa.config import QsarsaAC2Config, QsarsaACConfig, QsarsaConfig
from rlkit2.agents.qsarsa.estimator import QSarsaLearner
from rlkit2.agents.qsarsa.learner import QsarsaACLearner
from rlkit2.config import store
from rlkit2.registry import register_agent

for _name, (_cls, _builder) in BUILDERS.items():
    store(f"{_name}_schema", _cls, group="agent")
    register_agent(_name, _cls, "control", _builder, offline=True)

__all__ = ["QSarsaLearner", "QsarsaAC2Config", "QsarsaACConfig", "QsarsaACLearner", "QsarsaConfig", "make_agent"]
