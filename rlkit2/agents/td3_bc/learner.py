"""TD3+BC learner: TD3's twin critics (one stacked ensemble) and a BC-regularised delayed actor.

Speed (docs/architecture.md, performance habits): the batch is one gather from the replay; twin
critics are one `QEnsemble` (one bmm per layer); the actor's objective runs critic member 0 alone
(`member_forward`) and takes gradients only for the actor's parameters (`torch.autograd.grad`), so no
critic weight gradients are computed and thrown away; targets move by `torch._foreach_lerp_`; metrics
stay tensors. The learner owns a torch Generator for target-policy noise, and its state dict
carries it and the replay's sampling RNG, so a resume reproduces an uninterrupted run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from rlkit2.agents.td3_bc import losses
from rlkit2.agents.td3_bc.common import NormalizedPolicy, dataset_normalizer, member_forward
from rlkit2.agents.td3_bc.config import TD3BCConfig
from rlkit2.core import EnvSpec
from rlkit2.learners import TorchLearner, draw_on, learner_device, make_adam, optimizer_step, replay_generator
from rlkit2.networks import DeterministicPolicy, QEnsemble, soft_update


class TD3BCLearner(TorchLearner):
    """Subclasses (Qsarsa-AC/AC2) override `critic_loss_fn` and `actor_loss_fn`."""

    n_critics = 2

    def __init__(self, config: TD3BCConfig, spec: EnvSpec, replay: Any, seed: int = 0):
        super().__init__()
        self.config, self.replay = config, replay
        self.max_action = float(spec.action_high)
        self.act_dim = spec.act_dim
        torch.manual_seed(seed)  # network initialisation
        self.normalizer = dataset_normalizer(replay, spec.obs_dim, config.normalize_obs)
        self.actor = DeterministicPolicy(spec.obs_dim, spec.act_dim, config.hidden, self.max_action)
        self.critic = QEnsemble(spec.obs_dim, spec.act_dim, n=self.n_critics, hidden=config.hidden)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.device = learner_device(replay)
        self.place(self.normalizer, self.actor, self.critic, self.actor_target, self.critic_target)
        self.actor_params = list(self.actor.parameters())
        self.critic_params = list(self.critic.parameters())
        self.actor_opt = make_adam(self.actor_params, config.actor_lr)
        self.critic_opt = make_adam(self.critic_params, config.critic_lr)
        self.policy_module = NormalizedPolicy(self.normalizer, self.actor)
        self.modules = {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                        "critic_target": self.critic_target, "normalizer": self.normalizer}
        self.optimizers = {"actor": self.actor_opt, "critic": self.critic_opt}
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.generators = {"generator": self.generator, **replay_generator(replay)}
        self._last_actor_loss = torch.zeros((), device=self.device)

    # ------------------------------------------------------------------ pieces subclasses reuse
    def target_actions(self, next_obs: torch.Tensor) -> torch.Tensor:
        c = self.config
        noise = draw_on(self.device, torch.randn(next_obs.shape[0], self.act_dim,
                                                 generator=self.generator)) * (c.policy_noise * self.max_action)
        return losses.smoothed_target_action(self.actor_target(next_obs), noise,
                                             c.noise_clip * self.max_action, self.max_action)

    def critic_loss_fn(self, obs, actions, rewards, next_obs, terminals, batch) -> tuple[torch.Tensor, dict]:
        with torch.no_grad():
            next_q = self.critic_target(next_obs, self.target_actions(next_obs)).min(dim=0).values
            target = losses.bellman_target(rewards, terminals, next_q, self.config.gamma)
        q = self.critic(obs, actions)
        return losses.critic_loss(q, target), {"q_mean": q.detach().mean()}

    def actor_loss_fn(self, obs, actions) -> tuple[torch.Tensor, dict]:
        pi = self.actor(obs)
        q_pi = member_forward(self.critic, obs, pi, 0)
        c = self.config
        return losses.td3_bc_actor_loss(q_pi, pi, actions, c.alpha, c.bc_weight), {}

    def update_targets(self) -> None:
        soft_update(self.critic_target, self.critic, self.config.tau)
        soft_update(self.actor_target, self.actor, self.config.tau)

    # ------------------------------------------------------------------ the update
    def step(self) -> dict[str, Any]:
        c = self.config
        b = self.replay.sample(c.batch_size)
        obs, next_obs = self.normalizer(b.observations), self.normalizer(b.next_observations)
        critic_loss, metrics = self.critic_loss_fn(obs, b.actions, b.rewards, next_obs, b.terminals, b)
        optimizer_step(self.critic_opt, critic_loss, grads_only_for=self.critic_params)
        self.num_steps += 1
        if self.num_steps % c.policy_freq == 0:
            actor_loss, actor_metrics = self.actor_loss_fn(obs, b.actions)
            optimizer_step(self.actor_opt, actor_loss, grads_only_for=self.actor_params)
            self.update_targets()
            self._last_actor_loss = actor_loss.detach()
            self._last_actor_metrics = {k: v.detach() for k, v in actor_metrics.items()}
        metrics["critic_loss"] = critic_loss.detach()
        metrics["actor_loss"] = self._last_actor_loss
        metrics.update(getattr(self, "_last_actor_metrics", {}))
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["last_actor_loss"] = self._last_actor_loss
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._last_actor_loss = torch.as_tensor(state["last_actor_loss"]).to(self.device)
