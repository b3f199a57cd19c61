"""BC learner: an MLP policy (tanh-Gaussian or deterministic) fit to demonstration actions."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn

from rlkit2.agents.bc import losses
from rlkit2.agents.bc.config import BCConfig
from rlkit2.core import ConfigError, EnvSpec
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step
from rlkit2.networks import DeterministicPolicy, Normalizer, mlp


class GaussianHead(nn.Module):
    """N(max_action * tanh(mu(s)), diag sigma(s)^2), sigma >= min_std, fit by NLL in action space.

    Not a tanh-squashed Gaussian: demo actions sit exactly on the bounds (saturated OSC deltas, the
    gripper's +-1), where atanh diverges and the squashed NLL is dominated by those dims."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: list[int], max_action: float, min_std: float,
                 dropout: float = 0.0):
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden, dropout=dropout)
        self.max_action = max_action
        self.log_std_min, self.log_std_max = math.log(min_std), 0.0

    def dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.net(x).chunk(2, dim=-1)
        return self.max_action * torch.tanh(mu), log_std.clamp(self.log_std_min, self.log_std_max)

    def mode(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist(x)[0]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        mean, log_std = self.dist(x)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)  # drawn on the CPU
        return (mean + log_std.exp() * noise).clamp(-self.max_action, self.max_action), mean

    def log_prob(self, x: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        mean, log_std = self.dist(x)
        return (-0.5 * ((act - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


class BCPolicy(nn.Module):
    """Normaliser + policy head. `forward(obs)` is the greedy action; `sample` draws one (Gaussian head)."""

    def __init__(self, config: BCConfig, spec: EnvSpec):
        super().__init__()
        if config.head not in ("gaussian", "deterministic"):
            raise ConfigError(f"agent.head='{config.head}': expected 'gaussian' or 'deterministic'")
        self.head = config.head
        dims = list(config.obs_dims)
        if dims and (min(dims) < 0 or max(dims) >= spec.obs_dim or len(set(dims)) != len(dims)):
            raise ConfigError(f"agent.obs_dims={dims}: expected distinct dims of a {spec.obs_dim}-dim observation")
        # not a buffer: policies saved before the option existed load unchanged
        self.obs_dims = torch.as_tensor(dims, dtype=torch.long) if dims else None
        in_dim = len(dims) if dims else spec.obs_dim
        self.normalizer = Normalizer(in_dim, eps=config.obs_std_eps)
        if config.head == "gaussian":
            self.net: Any = GaussianHead(in_dim, spec.act_dim, list(config.hidden), spec.action_high,
                                         config.min_std, config.dropout)
        else:
            self.net = DeterministicPolicy(in_dim, spec.act_dim, config.hidden, spec.action_high)

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(device) also moves obs_dims (not a buffer)
        if self.obs_dims is not None:
            self.obs_dims = fn(self.obs_dims)
        return super()._apply(fn, recurse)

    def select(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation dims the policy sees."""
        return obs if self.obs_dims is None else obs.index_select(-1, self.obs_dims)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(self.select(obs))
        return self.net.mode(x) if self.head == "gaussian" else self.net(x)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.head != "gaussian":
            return self(obs)
        return self.net(self.normalizer(self.select(obs)), generator=generator)[0]

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.net.log_prob(self.normalizer(self.select(obs)), act)


class BCLearner(TorchLearner):
    """One step = one minibatch of (s, a) demo pairs. The normaliser is fit once on the replay's observations."""

    def __init__(self, config: BCConfig, spec: EnvSpec, replay: Any):
        super().__init__()
        self.config, self.replay = config, replay
        self.policy = BCPolicy(config, spec)
        if config.normalize_obs and len(replay):
            self.policy.normalizer.fit(self.policy.select(torch.as_tensor(replay.arrays()["observations"])))
        self.device = learner_device(replay)
        self.place(self.policy)
        params = list(self.policy.net.parameters())
        self.opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) \
            if config.weight_decay > 0 else make_adam(params, config.lr)
        self.modules = {"policy": self.policy}
        self.optimizers = {"policy": self.opt}

    def loss(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if self.policy.head == "gaussian":
            return losses.gaussian_nll(self.policy.log_prob(obs, actions))
        return losses.mse(self.policy(obs), actions)

    def step(self) -> dict[str, Any]:
        b = self.replay.sample(self.config.batch_size)
        loss = self.loss(b.observations, b.actions)
        optimizer_step(self.opt, loss)
        self.num_steps += 1
        with torch.no_grad():
            mse = ((self.policy(b.observations) - b.actions) ** 2).sum(-1).mean()
        return {"bc_loss": loss.detach(), "action_mse": mse}
