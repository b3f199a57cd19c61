"""TD3 learner: twin critics as one stacked ensemble, delayed actor and target updates."""

from __future__ import annotations

import copy
from typing import Any

import torch

from rlkit2.agents.td3 import losses
from rlkit2.agents.td3.config import TD3Config
from rlkit2.core import EnvSpec
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step
from rlkit2.networks import DeterministicPolicy, QEnsemble, soft_update


class TD3Learner(TorchLearner):
    def __init__(self, config: TD3Config, spec: EnvSpec, replay: Any):
        super().__init__()
        self.config, self.replay = config, replay
        self.max_action = float(spec.action_high)
        self.actor = DeterministicPolicy(spec.obs_dim, spec.act_dim, config.hidden, self.max_action)
        self.critic = QEnsemble(spec.obs_dim, spec.act_dim, n=2, hidden=config.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.device = learner_device(replay)
        self.place(self.actor, self.critic, self.actor_target, self.critic_target)
        self.actor_opt = make_adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = make_adam(self.critic.parameters(), config.critic_lr)
        self.modules = {"actor": self.actor, "critic": self.critic,
                        "actor_target": self.actor_target, "critic_target": self.critic_target}
        self.optimizers = {"actor": self.actor_opt, "critic": self.critic_opt}
        self._last_actor_loss = torch.zeros((), device=self.device)

    def step(self) -> dict[str, Any]:
        c = self.config
        b = self.replay.sample(c.batch_size)
        with torch.no_grad():
            noise = torch.randn_like(b.actions) * (c.policy_noise * self.max_action)
            next_a = losses.smoothed_target_action(self.actor_target(b.next_observations), noise,
                                                   c.noise_clip * self.max_action, self.max_action)
            next_q = self.critic_target(b.next_observations, next_a).min(dim=0).values
            target = losses.bellman_target(b.rewards, b.terminals, next_q, c.gamma)
        q = self.critic(b.observations, b.actions)
        critic_loss = losses.critic_loss(q, target)
        optimizer_step(self.critic_opt, critic_loss)
        self.num_steps += 1
        if self.num_steps % c.policy_freq == 0:
            q_pi = self.critic(b.observations, self.actor(b.observations))[0]
            actor_loss = losses.deterministic_actor_loss(q_pi)
            optimizer_step(self.actor_opt, actor_loss)
            soft_update(self.critic_target, self.critic, c.tau)
            soft_update(self.actor_target, self.actor, c.tau)
            self._last_actor_loss = actor_loss.detach()
        return {"critic_loss": critic_loss.detach(), "actor_loss": self._last_actor_loss,
                "q_mean": q.detach().mean()}
