"""IQL learner: expectile V, V-bootstrapped twin Q (one stacked ensemble), AWR Gaussian actor.

Speed: the three losses touch disjoint parameters (V's uses the target Q, Q's uses V(s') under
no_grad, the actor's uses detached advantages), so they are summed and back-propagated once and
stepped by one fused Adam with three parameter groups (the actor's lr cosine-decays). This means
Q and the actor see V *before* this step's V update, a one-step lag compared with the reference
implementation's sequential updates (a documented speed choice, not from the paper).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from rlkit2.agents.iql import losses
from rlkit2.agents.iql.config import IQLConfig
from rlkit2.agents.td3_bc.common import NormalizedPolicy, dataset_normalizer, episode_returns_from_transitions
from rlkit2.core import ConfigError, EnvSpec
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step, replay_generator
from rlkit2.networks import QEnsemble, VEnsemble, mlp, soft_update


class GaussianPolicy(nn.Module):
    """N(max_action * tanh(MLP(s)), exp(log_std)) with a state-independent log-std (IQL / CORL's policy).

    The mean is squashed, the samples are not, so dataset actions at the bounds (+-1) have finite
    log-probabilities (a tanh-squashed density would need atanh(+-1)). `forward` is the mean.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], max_action: float = 1.0):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.net(obs))

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mean = self(obs)
        log_std = self.log_std.clamp(-20.0, 2.0)
        return (-0.5 * ((act - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class IQLLearner(TorchLearner):
    def __init__(self, config: IQLConfig, spec: EnvSpec, replay: Any, seed: int = 0):
        super().__init__()
        if config.reward_scaling not in ("return_range", "none"):
            raise ConfigError(f"agent.reward_scaling must be 'return_range' or 'none', got '{config.reward_scaling}'")
        if not 0.0 < config.expectile < 1.0:
            raise ConfigError(f"agent.expectile must be in (0, 1), got {config.expectile}")
        self.config, self.replay = config, replay
        torch.manual_seed(seed)
        self.normalizer = dataset_normalizer(replay, spec.obs_dim, config.normalize_obs)
        self.actor = GaussianPolicy(spec.obs_dim, spec.act_dim, config.hidden, float(spec.action_high))
        self.critic = QEnsemble(spec.obs_dim, spec.act_dim, n=2, hidden=config.hidden)
        self.value = VEnsemble(spec.obs_dim, n=1, hidden=config.hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.device = learner_device(replay)
        self.place(self.normalizer, self.actor, self.critic, self.value, self.critic_target)
        self.reward_scale = 1.0
        if config.reward_scaling == "return_range":
            arrays = {k: np.asarray(v) for k, v in replay.arrays().items()}
            self.reward_scale = losses.reward_scale(episode_returns_from_transitions(arrays),  # type: ignore[arg-type]
                                                    config.return_range_scale)
        self.params = [*self.value.parameters(), *self.critic.parameters(), *self.actor.parameters()]
        self.opt = make_adam([{"params": list(self.value.parameters()), "lr": config.value_lr},
                              {"params": list(self.critic.parameters()), "lr": config.critic_lr},
                              {"params": list(self.actor.parameters()), "lr": config.actor_lr}], config.actor_lr)
        decay = max(1, config.actor_lr_decay_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.opt, [lambda _: 1.0, lambda _: 1.0, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, decay) / decay))])
        self.policy_module = NormalizedPolicy(self.normalizer, self.actor)
        self.modules = {"actor": self.actor, "critic": self.critic, "value": self.value,
                        "critic_target": self.critic_target, "normalizer": self.normalizer}
        self.optimizers = {"all": self.opt}
        self.schedulers = {"actor_cosine": self.scheduler}
        self.generators = replay_generator(replay)

    def step(self) -> dict[str, Any]:
        c = self.config
        b = self.replay.sample(c.batch_size)
        obs, next_obs = self.normalizer(b.observations), self.normalizer(b.next_observations)
        with torch.no_grad():
            target_q = self.critic_target(obs, b.actions).min(dim=0).values
            next_v = self.value(next_obs)[0]
            q_tgt = losses.q_target(b.rewards * self.reward_scale, b.terminals, next_v, c.gamma)
        v = self.value(obs)[0]
        adv = target_q - v
        value_loss = losses.expectile_loss(adv, c.expectile)
        q = self.critic(obs, b.actions)
        critic_loss = losses.critic_loss(q, q_tgt)
        actor_loss = losses.awr_actor_loss(self.actor.log_prob(obs, b.actions), adv, c.beta, c.max_weight)
        optimizer_step(self.opt, value_loss + critic_loss + actor_loss)  # all-reduced under torchrun
        self.scheduler.step()
        soft_update(self.critic_target, self.critic, c.tau)
        self.num_steps += 1
        return {"value_loss": value_loss.detach(), "critic_loss": critic_loss.detach(),
                "actor_loss": actor_loss.detach(), "adv_mean": adv.detach().mean(), "q_mean": q.detach().mean()}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["reward_scale"] = self.reward_scale
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.reward_scale = float(state["reward_scale"])
