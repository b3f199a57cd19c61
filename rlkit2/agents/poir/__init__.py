"""POIR: robust imitation by return-to-distribution planning (Cideron et al., 2023), family "imitation".

Reconstruction (the paper's full text was not available; the abstract fixes: BC + a planner whose
objective is to bring the agent back to states the expert visited, trained offline, planner fine-tuned
online). Choices made here, each a config option:
- prior: a BC policy (rlkit2.agents.bc), one source of the planner's proposals (MPPI candidates are the
  prior's closed-loop actions plus Gaussian noise; candidate 0 is the prior itself);
- return-to-distribution proposals (`expert_proposals`): the other candidates follow the action the expert
  took at the nearest demo state over `score_dims` (plus the same noise). On features that do not depend on
  where the object is, this non-parametric policy generalises where the prior does not; the planner keeps
  whichever candidates the model predicts return to expert-like states;
- dynamics: an ensemble of MLPs predicting the normalised state change, trained on the demos offline and on
  demos + deployment transitions online; its disagreement is a penalty in the planner's return;
- in-distribution score: minus the squared normalised distance to the nearest expert state (k-NN over
  `score_dims`), i.e. a non-parametric density proxy;
- planner: MPPI (one iteration, softmax weights with a scale-free temperature) over a short horizon;
- online fine-tuning of the planner: the model trains on deployment transitions too, and the planner's
  settings (`planner_arms`: proposal mix, horizon, or the prior alone) are chosen per episode by Thompson
  sampling on success, the deployed policy keeping the arm played most (arms.py). Optional (off by default,
  each measured to hurt on Lift): successful episodes also join the score's reference set
  (`score_add_successful`), the expert proposals' (state, action) set (`proposals_add_successful`) and the
  prior's training batches (`prior_online_fraction`).
"""

from __future__ import annotations

from rlkit2.agents.poir.builder import make_agent
from rlkit2.agents.poir.config import POIRConfig
from rlkit2.agents.poir.learner import POIRLearner
from rlkit2.agents.poir.planner import MPPIPlanner, POIRActor
from rlkit2.config import store
from rlkit2.registry import register_agent

store("poir_schema", POIRConfig, group="agent")
register_agent("poir", POIRConfig, "imitation", make_agent, offline=True)

__all__ = ["MPPIPlanner", "POIRActor", "POIRConfig", "POIRLearner", "make_agent"]
