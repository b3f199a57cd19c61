"""The cql builder: the CQL learner and its greedy actor (`learner.policy_module`, normaliser inside)."""

from __future__ import annotations

from rlkit2.agents.cql.config import CQLConfig
from rlkit2.agents.cql.learner import CQLLearner
from rlkit2.agents.td3_bc.common import offline_agent_builder

make_agent = offline_agent_builder(CQLLearner, CQLConfig)
