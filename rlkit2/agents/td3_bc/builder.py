"""The td3_bc builder: the TD3+BC learner and its greedy actor (`learner.policy_module`, normaliser inside)."""

from __future__ import annotations

from rlkit2.agents.td3_bc.common import offline_agent_builder
from rlkit2.agents.td3_bc.config import TD3BCConfig
from rlkit2.agents.td3_bc.learner import TD3BCLearner

make_agent = offline_agent_builder(TD3BCLearner, TD3BCConfig)
