"""Qsarsa-AC / Qsarsa-AC2 learner: TD3+BC plus a jointly trained Q_sarsa estimator.

Each step samples one batch and uses it for both the SARSA update of Q_sarsa and the regularised
TD3+BC update. With `eta > 0` the critic sees (s, a) and (s, pi(s)) in one stacked forward
(2B rows through the twin-critic ensemble), so the penalty costs no extra kernel launches.
"""

from __future__ import annotations

from typing import Any

import torch

from rlkit2.agents.qsarsa import losses
from rlkit2.agents.qsarsa.config import QsarsaACConfig
from rlkit2.agents.qsarsa.estimator import QSarsaLearner
from rlkit2.agents.td3_bc.common import member_forward
from rlkit2.agents.td3_bc.learner import TD3BCLearner
from rlkit2.core import ConfigError, EnvSpec


class QsarsaACLearner(TD3BCLearner):
    def __init__(self, config: QsarsaACConfig, spec: EnvSpec, replay: Any, seed: int = 0):
        for k in ("eta", "beta", "kappa"):
            if getattr(config, k) < 0:
                raise ConfigError(f"agent.{k} must be >= 0, got {getattr(config, k)}")
        if config.beta > 1 or config.kappa > 1:
            raise ConfigError(f"agent.beta and agent.kappa are mixing weights in [0, 1], got {config.beta}, "
                              f"{config.kappa}")
        super().__init__(config, spec, replay, seed)
        self.config: QsarsaACConfig = config
        self.sarsa = QSarsaLearner(spec.obs_dim, spec.act_dim, replay=replay, hidden=config.hidden,
                                   lr=config.sarsa_lr, gamma=config.gamma, tau=config.tau, n=config.sarsa_members,
                                   batch_size=config.batch_size, normalizer=self.normalizer, seed=seed)
        if config.q_sarsa_checkpoint:
            # the Q networks only: the agent keeps its own normaliser and its replay's sampler state
            self.sarsa.load_estimate(config.q_sarsa_checkpoint)
        elif config.freeze_q_sarsa and config.sarsa_pretrain_steps == 0:
            raise ConfigError("agent.freeze_q_sarsa=true needs a trained Q_sarsa: agent.q_sarsa_checkpoint or "
                              "agent.sarsa_pretrain_steps > 0")
        self.modules.update(q_sarsa=self.sarsa.q_net, q_sarsa_target=self.sarsa.q_target)
        self.optimizers["q_sarsa"] = self.sarsa.opt

    def step(self) -> dict[str, Any]:
        if self.num_steps >= self.config.sarsa_pretrain_steps:
            return super().step()
        # pretraining phase: Q_sarsa alone, on the same sampler and normalisation the agent then uses
        b = self.replay.sample(self.config.batch_size)
        loss = self.sarsa.update_on(self.normalizer(b.observations), b.actions, b.rewards,
                                    self.normalizer(b.next_observations), b.next_actions, b.terminals,
                                    b.next_action_valid)
        self.num_steps += 1
        return {"q_sarsa_loss": loss}

    def critic_loss_fn(self, obs, actions, rewards, next_obs, terminals, batch) -> tuple[torch.Tensor, dict]:
        c = self.config
        metrics: dict[str, torch.Tensor] = {}
        if not c.freeze_q_sarsa:
            metrics["q_sarsa_loss"] = self.sarsa.update_on(obs, actions, rewards, next_obs, batch.next_actions,
                                                           terminals, batch.next_action_valid)
        with torch.no_grad():
            next_a = self.target_actions(next_obs)
            next_q = self.critic_target(next_obs, next_a).min(dim=0).values
            next_qs = self.sarsa.q_target(next_obs, next_a).mean(0) if c.beta > 0 else None
            target = losses.critic_target(rewards, terminals, next_q, next_qs, c.gamma, c.beta)
            if c.eta > 0:
                pi = self.actor(obs)
                q_sarsa_pi = self.sarsa.q(obs, pi)
        if c.eta > 0:
            b = obs.shape[0]
            q_all = self.critic(torch.cat([obs, obs]), torch.cat([actions, pi]))
            q_data, q_pi = q_all[:, :b], q_all[:, b:]
            loss = losses.qsarsa_critic_loss(q_data, target, q_pi, q_sarsa_pi, c.eta)
            metrics["q_sarsa_pi"] = q_sarsa_pi.mean()
            metrics["critic_penalty"] = losses.sarsa_critic_penalty(q_pi.detach(), q_sarsa_pi)
        else:
            q_data = self.critic(obs, actions)
            loss = losses.qsarsa_critic_loss(q_data, target, None, None, 0.0)
        metrics["q_mean"] = q_data.detach().mean()
        return loss, metrics

    def actor_loss_fn(self, obs, actions) -> tuple[torch.Tensor, dict]:
        c = self.config
        pi = self.actor(obs)
        q_pi = member_forward(self.critic, obs, pi, 0)
        q_sarsa_pi = self.sarsa.q(obs, pi) if c.kappa > 0 else None
        return losses.qsarsa_actor_loss(q_pi, q_sarsa_pi, pi, actions, c.alpha, c.kappa, c.bc_weight), {}
