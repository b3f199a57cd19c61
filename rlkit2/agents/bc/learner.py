"""BC learner: an MLP policy (tanh-Gaussian or deterministic) fit to demonstration actions; with
`image_keys`, each image goes through its own CNN and the features join the low-dim obs before the MLP."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn as nn
from numpy.typing import NDArray

from rlkit2.agents.bc import losses
from rlkit2.agents.bc.config import BCConfig
from rlkit2.core import ConfigError, DataError, EnvSpec
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step
from rlkit2.networks import DeterministicPolicy, ImageEncoder, Normalizer, mlp
from rlkit2.replay import Batch, TransitionReplay

IMAGE_PREFIX = "images/"  # to_transitions(..., image_keys=) names its image arrays images/<key>


class ImageReplay(TransitionReplay):
    """A fixed demo dataset with image observations: the low-dim transitions of a `TransitionReplay` and, row for
    row, uint8 images (N, H, W, C) per key, stored once as uint8 (torch views of the arrays, no float copy);
    a batch's images are converted by the encoder."""

    images: dict[str, torch.Tensor]

    @classmethod
    def from_transitions(cls, arrays: Mapping[str, NDArray[Any]], *, seed: int = 0,
                         device: str | torch.device = "cpu") -> ImageReplay:
        """From `rlkit2.data.robomimic.to_transitions(ds, obs_keys, image_keys=...)`'s arrays."""
        images = {k[len(IMAGE_PREFIX):]: v for k, v in arrays.items() if k.startswith(IMAGE_PREFIX)}
        if not images:
            raise DataError(f"no image arrays ({IMAGE_PREFIX}<key>) among {sorted(arrays)}: pass image_keys to "
                            "to_transitions")
        replay = cast(ImageReplay, cls.from_arrays(arrays, seed=seed, device=device))
        for k, v in images.items():
            if v.dtype != np.uint8 or v.ndim != 4 or len(v) != len(replay):
                raise DataError(f"images '{k}': {v.dtype} {v.shape}, expected uint8 ({len(replay)}, H, W, C)")
        replay.images = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in images.items()}
        return replay

    def add(self, *args: Any, **kwargs: Any) -> None:
        raise DataError("an ImageReplay holds a fixed demo dataset: it does not grow")

    def sample_images(self, batch_size: int) -> tuple[Batch, dict[str, torch.Tensor]]:
        """A batch of transitions and the same rows' images (uint8, on the replay's device)."""
        if self._size == 0:
            raise DataError("cannot sample from an empty replay")
        idx = torch.randint(0, self._size, (batch_size,), generator=self.generator)
        return self.gather(idx), {k: v.index_select(0, idx).to(self.device) for k, v in self.images.items()}


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
    """Normaliser [+ image encoders] + policy head. `forward(obs[, images])` is the greedy action; `sample` draws
    one (Gaussian head). `image_shapes`: (H, W, C) per image key the data carries."""

    def __init__(self, config: BCConfig, spec: EnvSpec, image_shapes: Mapping[str, Sequence[int]] | None = None):
        super().__init__()
        if config.head not in ("gaussian", "deterministic"):
            raise ConfigError(f"agent.head='{config.head}': expected 'gaussian' or 'deterministic'")
        self.head = config.head
        dims = list(config.obs_dims)
        if dims and (min(dims) < 0 or max(dims) >= spec.obs_dim or len(set(dims)) != len(dims)):
            raise ConfigError(f"agent.obs_dims={dims}: expected distinct dims of a {spec.obs_dim}-dim observation")
        # not a buffer: policies saved before the option existed load unchanged
        self.obs_dims = torch.as_tensor(dims, dtype=torch.long) if dims else None
        low_dim = len(dims) if dims else spec.obs_dim
        self.normalizer = Normalizer(low_dim, eps=config.obs_std_eps)
        self.image_keys = list(config.image_keys)
        shapes = dict(image_shapes or {})
        missing = [k for k in self.image_keys if k not in shapes]
        if missing:
            raise ConfigError(f"agent.image_keys={self.image_keys}: the demonstrations carry no images {missing} "
                              f"(have {sorted(shapes)}); load them with read_robomimic(..., image_keys=) and "
                              "to_transitions(..., image_keys=) into an ImageReplay")
        in_dim = low_dim + len(self.image_keys) * int(config.image_feature_dim)
        if config.head == "gaussian":
            self.net: Any = GaussianHead(in_dim, spec.act_dim, list(config.hidden), spec.action_high,
                                         config.min_std, config.dropout)
        else:
            self.net = DeterministicPolicy(in_dim, spec.act_dim, config.hidden, spec.action_high)
        # registered after the head: a policy without images has the same parameters and state_dict as before
        self.encoders = nn.ModuleDict({k: ImageEncoder(int(shapes[k][-1]), list(config.image_channels),
                                                       int(config.image_feature_dim), str(config.image_pool))
                                       for k in self.image_keys})

    def _apply(self, fn: Any, recurse: bool = True) -> Any:  # .to(device) also moves obs_dims (not a buffer)
        if self.obs_dims is not None:
            self.obs_dims = fn(self.obs_dims)
        return super()._apply(fn, recurse)

    def select(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation dims the policy sees."""
        return obs if self.obs_dims is None else obs.index_select(-1, self.obs_dims)

    def features(self, obs: torch.Tensor, images: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The head's input: the normalised low-dim obs [+ each image key's encoder features]."""
        x = self.normalizer(self.select(obs))
        if not self.image_keys:
            return x
        missing = [k for k in self.image_keys if images is None or k not in images]
        if missing:
            raise ConfigError(f"this BC policy sees images {self.image_keys}: call it with images= (missing {missing})")
        assert images is not None
        return torch.cat([x, *(self.encoders[k](images[k]) for k in self.image_keys)], dim=-1)

    def forward(self, obs: torch.Tensor, images: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.features(obs, images)
        return self.net.mode(x) if self.head == "gaussian" else self.net(x)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None,
               images: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        if self.head != "gaussian":
            return self(obs, images)
        return self.net(self.features(obs, images), generator=generator)[0]

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor,
                 images: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.net.log_prob(self.features(obs, images), act)


class BCLearner(TorchLearner):
    """One step = one minibatch of (s, a) demo pairs. The normaliser is fit once on the replay's observations.
    With `config.image_keys` the replay is an `ImageReplay` and each batch carries its rows' images."""

    def __init__(self, config: BCConfig, spec: EnvSpec, replay: Any):
        super().__init__()
        self.config, self.replay = config, replay
        shapes = {k: tuple(v.shape[1:]) for k, v in (getattr(replay, "images", None) or {}).items()}
        self.policy = BCPolicy(config, spec, shapes)
        if config.normalize_obs and len(replay):
            self.policy.normalizer.fit(self.policy.select(torch.as_tensor(replay.arrays()["observations"])))
        self.device = learner_device(replay)
        self.place(self.policy)
        params = list(self.policy.net.parameters()) + list(self.policy.encoders.parameters())
        self.opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) \
            if config.weight_decay > 0 else make_adam(params, config.lr)
        self.modules = {"policy": self.policy}
        self.optimizers = {"policy": self.opt}
        # online fine-tuning (config.online_env_steps > 0): the transitions of successful online episodes
        self.online_phase = False
        self.success_obs = torch.zeros(0, spec.obs_dim, device=self.device)
        self.success_act = torch.zeros(0, spec.act_dim, device=self.device)

    def loss(self, obs: torch.Tensor, actions: torch.Tensor,
             images: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        if self.policy.head == "gaussian":
            return losses.gaussian_nll(self.policy.log_prob(obs, actions, images))
        return losses.mse(self.policy(obs, images), actions)

    def step(self) -> dict[str, Any]:
        images: dict[str, torch.Tensor] | None = None
        if self.policy.image_keys:
            b, images = self.replay.sample_images(self.config.batch_size)
            obs, act = b.observations, b.actions
        else:
            obs, act = self._batch()
        loss = self.loss(obs, act, images)
        optimizer_step(self.opt, loss)
        self.num_steps += 1
        with torch.no_grad():
            mse = ((self.policy(obs, images) - act) ** 2).sum(-1).mean()
        return {"bc_loss": loss.detach(), "action_mse": mse}

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Demo pairs; online, once a successful episode exists, `online_success_fraction` of them from successes."""
        n = self.config.batch_size
        n_succ = int(n * self.config.online_success_fraction) if self.online_phase and len(self.success_obs) else 0
        b = self.replay.sample(n - n_succ)
        if not n_succ:
            return b.observations, b.actions
        idx = torch.randint(len(self.success_obs), (n_succ,), generator=self.replay.generator).to(self.device)
        return torch.cat([b.observations, self.success_obs[idx]]), torch.cat([b.actions, self.success_act[idx]])

    # ------------------------------------------------------------------ online fine-tuning (imitation runner)
    def attach_online(self, replay: TransitionReplay) -> None:
        """The runner's replay of every online transition; BC learns from the successful episodes only, which
        `end_episode` hands over whole (a transition's episode outcome is unknown while it is being collected)."""
        if self.policy.image_keys:
            raise ConfigError("agent.online_env_steps > 0 with agent.image_keys: online fine-tuning is low-dim only")
        self.online = replay

    def end_episode(self, observations: np.ndarray, success: bool,
                    actions: np.ndarray | None = None) -> dict[str, float]:
        self.online_phase = True
        if success:
            if actions is None or len(actions) != len(observations) - 1:
                raise ValueError("end_episode: a successful episode needs its actions, one fewer than observations")
            obs = torch.as_tensor(np.asarray(observations[:-1]), dtype=torch.float32, device=self.device)
            act = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device)
            self.success_obs = torch.cat([self.success_obs, obs])
            self.success_act = torch.cat([self.success_act, act])
        return {"online/success_transitions": float(len(self.success_obs))}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.config.online_env_steps > 0:  # offline BC checkpoints keep their former layout
            state.update(online_phase=self.online_phase, success_obs=self.success_obs.cpu().clone(),
                         success_act=self.success_act.cpu().clone())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if "success_obs" in state and self.config.online_env_steps > 0:  # an offline run starts without them
            self.online_phase = bool(state["online_phase"])
            self.success_obs = state["success_obs"].to(self.device)
            self.success_act = state["success_act"].to(self.device)
