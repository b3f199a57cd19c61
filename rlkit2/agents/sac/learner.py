"""SAC learner: twin soft Q ensemble, tanh-Gaussian actor, learned temperature."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from rlkit2.agents.sac import losses
from rlkit2.agents.sac.config import SACConfig
from rlkit2.agents.td3.losses import critic_loss as mse_critic_loss
from rlkit2.core import EnvSpec
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step
from rlkit2.networks import QEnsemble, TanhGaussianPolicy, soft_update


class SACLearner(TorchLearner):
    def __init__(self, config: SACConfig, spec: EnvSpec, replay: Any):
        super().__init__()
        self.config, self.replay = config, replay
        self.actor = TanhGaussianPolicy(spec.obs_dim, spec.act_dim, config.hidden, float(spec.action_high))
        self.critic = QEnsemble(spec.obs_dim, spec.act_dim, n=2, hidden=config.hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.device = learner_device(replay)
        self.place(self.actor, self.critic, self.critic_target)
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(config.init_alpha), device=self.device))
        self.target_entropy = -float(spec.act_dim) if config.target_entropy is None else config.target_entropy
        self._actor_params = list(self.actor.parameters())
        self.actor_opt = make_adam(self._actor_params, config.actor_lr)
        self.critic_opt = make_adam(self.critic.parameters(), config.critic_lr)
        self.alpha_opt = make_adam([self.log_alpha], config.alpha_lr)
        holder = torch.nn.Module()
        holder.log_alpha = self.log_alpha
        self.modules = {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                        "temperature": holder}
        self.optimizers = {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}

    def step(self) -> dict[str, Any]:
        c = self.config
        b = self.replay.sample(c.batch_size)
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_a, next_logp, _ = self.actor(b.next_observations)
            next_q = self.critic_target(b.next_observations, next_a).min(dim=0).values
            target = losses.soft_target(b.rewards, b.terminals, next_q, next_logp, alpha, c.gamma)
        q = self.critic(b.observations, b.actions)
        critic_loss = mse_critic_loss(q, target)
        optimizer_step(self.critic_opt, critic_loss)

        a, logp, _ = self.actor(b.observations)
        q_pi = self.critic(b.observations, a).min(dim=0).values
        actor_loss = losses.actor_loss(q_pi, logp, alpha)
        # gradients for the actor alone: the critic's weight gradients would be computed and then thrown away
        optimizer_step(self.actor_opt, actor_loss, grads_only_for=self._actor_params)
        alpha_loss = losses.temperature_loss(self.log_alpha, logp, self.target_entropy)
        optimizer_step(self.alpha_opt, alpha_loss)
        soft_update(self.critic_target, self.critic, c.tau)
        self.num_steps += 1
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "alpha": alpha, "entropy": -logp.detach().mean(), "q_mean": q.detach().mean()}
