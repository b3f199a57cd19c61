"""The offline_bc builder: the offline BC learner and its greedy actor (`learner.policy_module`, normaliser inside)."""

from __future__ import annotations

from rlkit2.agents.offline_bc.config import OfflineBCConfig
from rlkit2.agents.offline_bc.learner import OfflineBCLearner
from rlkit2.agents.td3_bc.common import offline_agent_builder

make_agent = offline_agent_builder(OfflineBCLearner, OfflineBCConfig)
