"""The bc_rnn builder: the BC-RNN learner and its recurrent actor (greedy: the most likely mode's mean, or
robomimic's low-noise sampling, `eval_mode`); no exploring actor."""

from __future__ import annotations

from typing import Any

from rlkit2.agents.bc_rnn.actor import RecurrentActor
from rlkit2.agents.bc_rnn.config import BCRNNConfig
from rlkit2.agents.bc_rnn.learner import BCRNNLearner
from rlkit2.config import to_config
from rlkit2.core import Agent, EnvSpec


def make_agent(config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    cfg = to_config(config, BCRNNConfig)
    learner = BCRNNLearner(cfg, spec, replay, seed)
    actor = RecurrentActor(learner.policy, horizon=cfg.seq_length, eval_mode=cfg.eval_mode,
                           generator=learner.actor_generator, action_low=spec.action_low,
                           action_high=spec.action_high, device=learner.device)
    return Agent(learner, actor, None)
