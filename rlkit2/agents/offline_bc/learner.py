"""Offline BC learner: the same actor, normaliser and optimiser as TD3+BC, no critic."""

from __future__ import annotations

from typing import Any

import torch

from rlkit2.agents.offline_bc import losses
from rlkit2.agents.offline_bc.config import OfflineBCConfig
from rlkit2.agents.td3_bc.common import NormalizedPolicy, dataset_normalizer
from rlkit2.core import EnvSpec
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step, replay_generator
from rlkit2.networks import DeterministicPolicy


class OfflineBCLearner(TorchLearner):
    def __init__(self, config: OfflineBCConfig, spec: EnvSpec, replay: Any, seed: int = 0):
        super().__init__()
        self.config, self.replay = config, replay
        torch.manual_seed(seed)  # network initialisation, as TD3+BC's
        self.normalizer = dataset_normalizer(replay, spec.obs_dim, config.normalize_obs)
        self.actor = DeterministicPolicy(spec.obs_dim, spec.act_dim, config.hidden, float(spec.action_high))
        self.device = learner_device(replay)
        self.place(self.normalizer, self.actor)
        self.opt = make_adam(self.actor.parameters(), config.lr)
        self.policy_module = NormalizedPolicy(self.normalizer, self.actor)
        self.modules = {"actor": self.actor, "normalizer": self.normalizer}
        self.optimizers = {"actor": self.opt}
        self.generators = replay_generator(replay)

    def step(self) -> dict[str, Any]:
        b = self.replay.sample(self.config.batch_size)
        loss = losses.bc_loss(self.actor(self.normalizer(b.observations)), b.actions)
        optimizer_step(self.opt, loss)
        self.num_steps += 1
        return {"bc_loss": loss.detach()}
