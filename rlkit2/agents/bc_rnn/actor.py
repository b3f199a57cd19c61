"""The recurrent actor: keeps the RNN state across steps, as robomimic's rollout policy does."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rlkit2.agents.bc_rnn.learner import RNNGMMPolicy, RNNState
from rlkit2.core import BaseActor


class RecurrentActor(BaseActor):
    """Acts with `RNNGMMPolicy.step`, carrying the RNN state from step to step.

    The state restarts from zeros at `observe_first` (an episode's start; `reset()` does the same for callers
    without the hooks) and every `horizon` steps (robomimic's rnn_horizon, = seq_length: the policy never runs
    its RNN longer than the windows it was trained on). Observations are one (obs_dim,) or a batch (B, obs_dim);
    a batch of another size than the running state's starts a new state. Actions come back as NumPy arrays,
    clipped to the action bounds.
    """

    def __init__(self, policy: RNNGMMPolicy, *, horizon: int, eval_mode: str = "mode",
                 generator: torch.Generator | None = None, action_low: float = -1.0, action_high: float = 1.0,
                 device: str | torch.device = "cpu"):
        self.policy, self.horizon, self.eval_mode = policy, int(horizon), eval_mode
        self.generator = generator
        self.low, self.high = action_low, action_high
        self.device = torch.device(device)
        self.state: RNNState = None
        self.steps = 0  # steps since the state was last reset by observe_first / reset

    def reset(self) -> None:
        self.state, self.steps = None, 0

    def observe_first(self, observation: Any) -> None:
        self.reset()

    def _batch(self) -> int | None:
        if self.state is None:
            return None
        h = self.state[0] if isinstance(self.state, tuple) else self.state
        return int(h.shape[1])

    @torch.no_grad()
    def act(self, observation: Any) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32, device=self.device)
        single = obs.dim() == 1
        x = obs.unsqueeze(0) if single else obs
        if self.steps % self.horizon == 0 or self._batch() != x.shape[0]:
            self.state = None  # zeros: the start of a training window
        self.steps += 1
        action, self.state = self.policy.step(x, self.state, self.eval_mode, self.generator)
        a = action.squeeze(0) if single else action
        return np.clip(a.cpu().numpy(), self.low, self.high).astype(np.float32)

    __call__ = act
