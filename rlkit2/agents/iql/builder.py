"""The iql builder: the IQL learner and its greedy actor (`learner.policy_module`, normaliser inside)."""

from __future__ import annotations

from rlkit2.agents.iql.config import IQLConfig
from rlkit2.agents.iql.learner import IQLLearner
from rlkit2.agents.td3_bc.common import offline_agent_builder

make_agent = offline_agent_builder(IQLLearner, IQLConfig)
