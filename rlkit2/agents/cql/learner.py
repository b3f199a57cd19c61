"""CQL learner: SAC (twin Q ensemble, tanh-Gaussian actor, learned temperature) + the conservative penalty.

One stacked critic evaluates all sampled actions of a batch in one pass: observations are repeated N times
([B*N, obs]) and the ensemble returns [n, B*N]. The learner owns a torch Generator for every sample it draws
(policy samples, uniform actions) and its state dict carries it and the replay's sampling RNG, so a resume
reproduces an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from rlkit2.agents.cql import losses
from rlkit2.agents.cql.config import CQLConfig
from rlkit2.agents.sac import losses as sac_losses
from rlkit2.agents.td3.losses import critic_loss as mse_critic_loss
from rlkit2.agents.td3_bc.common import NormalizedPolicy, dataset_normalizer
from rlkit2.core import ConfigError, EnvSpec
from rlkit2.learners import TorchLearner, draw_on, learner_device, make_adam, optimizer_step, replay_generator
from rlkit2.networks import QEnsemble, TanhGaussianPolicy, soft_update


class CQLLearner(TorchLearner):
    def __init__(self, config: CQLConfig, spec: EnvSpec, replay: Any, seed: int = 0):
        super().__init__()
        if config.num_sampled_actions < 1:
            raise ConfigError(f"agent.num_sampled_actions must be >= 1, got {config.num_sampled_actions}")
        if config.cql_temperature <= 0:
            raise ConfigError(f"agent.cql_temperature must be > 0, got {config.cql_temperature}")
        if config.cql_weight < 0:
            raise ConfigError(f"agent.cql_weight must be >= 0, got {config.cql_weight}")
        self.config, self.replay = config, replay
        self.act_dim, self.max_action = spec.act_dim, float(spec.action_high)
        torch.manual_seed(seed)  # network initialisation
        self.normalizer = dataset_normalizer(replay, spec.obs_dim, config.normalize_obs)
        self.actor = TanhGaussianPolicy(spec.obs_dim, spec.act_dim, config.hidden, self.max_action)
        self.critic = QEnsemble(spec.obs_dim, spec.act_dim, n=2, hidden=config.hidden)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.device = learner_device(replay)
        self.place(self.normalizer, self.actor, self.critic, self.critic_target)
        self.log_alpha = torch.nn.Parameter(torch.tensor(math.log(config.init_alpha), device=self.device))
        self.log_alpha_prime = torch.nn.Parameter(torch.tensor(math.log(max(config.cql_weight, 1e-8)),
                                                               device=self.device))
        self.target_entropy = -float(spec.act_dim) if config.target_entropy is None else config.target_entropy
        self.actor_opt = make_adam(self.actor.parameters(), config.actor_lr)
        self.critic_opt = make_adam(self.critic.parameters(), config.critic_lr)
        self.alpha_opt = make_adam([self.log_alpha], config.alpha_lr)
        self.alpha_prime_opt = make_adam([self.log_alpha_prime], config.critic_lr)
        temps = torch.nn.Module()
        temps.log_alpha, temps.log_alpha_prime = self.log_alpha, self.log_alpha_prime
        self.policy_module = NormalizedPolicy(self.normalizer, self.actor, head="mode")
        self.modules = {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
                        "temperatures": temps, "normalizer": self.normalizer}
        self.optimizers = {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt,
                           "alpha_prime": self.alpha_prime_opt}
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.generators = {"generator": self.generator, **replay_generator(replay)}

    def _sampled_q(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """[n, B, 3k] importance-weighted Q at uniform, pi(.|s) and pi(.|s') actions (all evaluated at s)."""
        B, k = obs.shape[0], self.config.num_sampled_actions
        obs_k, next_k = obs.repeat_interleave(k, 0), next_obs.repeat_interleave(k, 0)
        uniform = (draw_on(self.device, torch.rand(B * k, self.act_dim, generator=self.generator)) * 2 - 1) \
            * self.max_action
        with torch.no_grad():  # the penalty trains the critic only; the actor's own loss moves the actor
            a_pi, logp_pi, _ = self.actor(obs_k, generator=self.generator)
            a_next, logp_next, _ = self.actor(next_k, generator=self.generator)
        n = self.critic.n
        q_all = self.critic(torch.cat([obs_k, obs_k, obs_k]), torch.cat([uniform, a_pi, a_next])).view(n, 3, B, k)
        if not self.config.importance_sample:
            return q_all.permute(0, 2, 1, 3).reshape(n, B, 3 * k)
        return losses.importance_weighted(q_all[:, 0], q_all[:, 1], logp_pi.view(B, k), q_all[:, 2],
                                          logp_next.view(B, k), self.act_dim, self.max_action)

    def step(self) -> dict[str, Any]:
        c = self.config
        b = self.replay.sample(c.batch_size)
        obs, next_obs = self.normalizer(b.observations), self.normalizer(b.next_observations)
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_a, next_logp, _ = self.actor(next_obs, generator=self.generator)
            next_q = self.critic_target(next_obs, next_a).min(dim=0).values
            entropy_alpha = alpha if c.backup_entropy else torch.zeros((), device=self.device)
            target = sac_losses.soft_target(b.rewards, b.terminals, next_q, next_logp, entropy_alpha, c.gamma)
        q = self.critic(obs, b.actions)
        penalty = losses.conservative_penalty(q, self._sampled_q(obs, next_obs), c.cql_temperature)
        metrics: dict[str, Any] = {}
        if c.lagrange:
            alpha_prime = self.log_alpha_prime.detach().exp().clamp(0.0, 1e6)
            gap = penalty - c.target_action_gap
            conservative = (alpha_prime * gap).sum()
            optimizer_step(self.alpha_prime_opt, losses.lagrange_loss(self.log_alpha_prime, penalty,
                                                                      c.target_action_gap))
            metrics["alpha_prime"] = alpha_prime
        else:
            conservative = c.cql_weight * penalty.sum()
        td_loss = mse_critic_loss(q, target)
        critic_loss = td_loss + conservative
        optimizer_step(self.critic_opt, critic_loss)

        a, logp, _ = self.actor(obs, generator=self.generator)
        if self.num_steps < c.bc_steps:  # behaviour cloning warm-up: maximise log pi(a_data | s) instead of Q
            actor_loss = (alpha * logp - self.actor.log_prob(obs, b.actions)).mean()
        else:
            q_pi = self.critic(obs, a).min(dim=0).values
            actor_loss = sac_losses.actor_loss(q_pi, logp, alpha)
        optimizer_step(self.actor_opt, actor_loss)
        optimizer_step(self.alpha_opt, sac_losses.temperature_loss(self.log_alpha, logp, self.target_entropy))
        soft_update(self.critic_target, self.critic, c.tau)
        self.num_steps += 1
        metrics.update({"critic_loss": critic_loss.detach(), "td_loss": td_loss.detach(),
                        "cql_penalty": penalty.detach().mean(), "actor_loss": actor_loss.detach(), "alpha": alpha,
                        "entropy": -logp.detach().mean(), "q_mean": q.detach().mean()})
        return metrics
