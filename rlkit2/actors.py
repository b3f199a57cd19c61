"""Actors for control agents: a torch policy behind the `Actor` interface."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rlkit2.core import BaseActor


class TorchPolicyActor(BaseActor):
    """Runs `policy_fn(obs_tensor) -> action_tensor` on one unbatched (or batched) numpy observation.

    `noise_std > 0` adds clipped Gaussian exploration noise (TD3's behaviour policy); the
    noise comes from a NumPy generator owned by the actor so it is seedable and checkpointable.
    `device`: where the policy's parameters live (its learner's device); observations are moved there and
    actions come back as NumPy arrays on the CPU.
    """

    def __init__(self, policy_fn: Callable[[torch.Tensor], torch.Tensor], *, action_low: float = -1.0,
                 action_high: float = 1.0, noise_std: float = 0.0, seed: int = 0,
                 device: str | torch.device = "cpu"):
        self.policy_fn = policy_fn
        self.low, self.high = action_low, action_high
        self.noise_std = noise_std
        self.rng = np.random.default_rng(seed)
        self.device = torch.device(device)

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32, device=self.device)
        single = obs.dim() == 1
        action = self.policy_fn(obs.unsqueeze(0) if single else obs)
        a = action.squeeze(0).cpu().numpy() if single else action.cpu().numpy()
        if self.noise_std > 0:
            a = a + self.rng.normal(0.0, self.noise_std * self.high, size=a.shape)
        return np.clip(a, self.low, self.high).astype(np.float32)

    __call__ = act

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
