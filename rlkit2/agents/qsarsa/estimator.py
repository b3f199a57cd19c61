"""Q_sarsa: the behaviour policy's Q-function, estimated by SARSA-style TD on the dataset.

    Q_sarsa(s, a) <- r + gamma * (1 - terminal) * Qbar_sarsa(s', a'),   a' = the dataset's next action

No max and no policy in the target: the fixed point is Q^{pi_beta}, the value of the policy that
collected the data (Shi et al., 2023). `QSarsaLearner` is a learner of its own: it can be trained
alone on a replay that stores `next_actions`, checkpointed with rlkit2.checkpoint (`save` / `load`),
and reused by the Qsarsa-AC/AC2 learners, which call `update_on` with the batch they already
sampled and normalised (one gather per step for both learners).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import torch

from rlkit2 import checkpoint
from rlkit2.agents.qsarsa import losses
from rlkit2.agents.td3_bc.common import dataset_normalizer
from rlkit2.core import DataError
from rlkit2.learners import TorchLearner, learner_device, make_adam, optimizer_step, replay_generator
from rlkit2.networks import Normalizer, QEnsemble, soft_update


class QSarsaLearner(TorchLearner):
    """SARSA-style evaluation of the behaviour policy with an `n`-member stacked Q ensemble.

    `q(obs, act)` is the members' mean (n = 1 by default). Observations fed to `update_on` / `q`
    are already normalised; `step()` (standalone use) normalises with `self.normalizer`.
    """

    def __init__(self, obs_dim: int, act_dim: int, *, replay: Any = None, hidden: Sequence[int] = (256, 256),
                 lr: float = 3e-4, gamma: float = 0.99, tau: float = 0.005, n: int = 1, batch_size: int = 256,
                 normalizer: Normalizer | None = None, seed: int = 0):
        super().__init__()
        if replay is not None and not getattr(replay, "with_next_actions", False):
            raise DataError("Q_sarsa needs the dataset's next actions a' (SARSA target r + gamma * Q(s', a')), "
                            "but the replay was built without `next_actions`; load the dataset with next actions")
        self.replay, self.gamma, self.tau, self.batch_size = replay, gamma, tau, batch_size
        if normalizer is None:  # standalone: the dataset's statistics, as the agents that reuse it normalise
            normalizer = dataset_normalizer(replay, obs_dim) if replay is not None else Normalizer(obs_dim)
        self.normalizer = normalizer
        with torch.random.fork_rng():
            torch.manual_seed(seed + 7919)  # its own init stream: adding Q_sarsa leaves the other nets' init alone
            self.q_net = QEnsemble(obs_dim, act_dim, n=n, hidden=hidden)
        self.q_target = copy.deepcopy(self.q_net).requires_grad_(False)
        self.device = learner_device(replay)
        self.place(self.normalizer, self.q_net, self.q_target)
        self.params = list(self.q_net.parameters())
        self.opt = make_adam(self.params, lr)
        self.modules = {"q_sarsa": self.q_net, "q_sarsa_target": self.q_target, "normalizer": self.normalizer}
        self.optimizers = {"q_sarsa": self.opt}
        self.generators = replay_generator(replay)

    def q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Q_sarsa(s, a) as (B,) (mean of the members)."""
        return self.q_net(obs, act).mean(0)

    def update_on(self, obs: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor, next_obs: torch.Tensor,
                  next_actions: torch.Tensor, terminals: torch.Tensor,
                  next_action_valid: torch.Tensor | None = None) -> torch.Tensor:
        """One SARSA TD step on a normalised batch; returns the loss (detached tensor).

        Rows whose a' is unknown (`next_action_valid` = 0, not terminal) are left out of the loss.
        """
        with torch.no_grad():
            next_q = self.q_target(next_obs, next_actions)
            target = losses.sarsa_target(rewards, terminals, next_q, self.gamma)
            weight = None if next_action_valid is None else torch.maximum(next_action_valid, terminals)
        loss = losses.sarsa_loss(self.q_net(obs, actions), target, weight)
        optimizer_step(self.opt, loss)
        soft_update(self.q_target, self.q_net, self.tau)
        self.num_steps += 1
        return loss.detach()

    def step(self) -> dict[str, Any]:
        if self.replay is None:
            raise DataError("QSarsaLearner.step() needs a replay (pass replay=...)")
        b = self.replay.sample(self.batch_size)
        loss = self.update_on(self.normalizer(b.observations), b.actions, b.rewards,
                              self.normalizer(b.next_observations), b.next_actions, b.terminals,
                              b.next_action_valid)
        return {"q_sarsa_loss": loss}

    # ------------------------------------------------------------------ its own checkpoint
    def save(self, path: str | os.PathLike[str]) -> None:
        checkpoint.save({"kind": "q_sarsa", "learner": self.state_dict()}, path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """This estimator's whole state (networks, optimiser, normaliser, sampler RNG): a standalone resume."""
        self.load_state_dict(self._read(path)["learner"])

    def load_estimate(self, path: str | os.PathLike[str], *, atol: float = 1e-4) -> None:
        """Only the Q networks of a pretrained estimator, for an agent that shares its normaliser and replay:
        the agent's observation normaliser and its replay's sampler state are left alone. The estimator was
        trained on normalised observations, so its normaliser must match the agent's (same dataset)."""
        modules = self._read(path)["learner"]["modules"]
        saved = modules["normalizer"]
        for key, now in self.normalizer.state_dict().items():
            if key in saved and not torch.allclose(saved[key].to(now.device, now.dtype), now, atol=atol):
                raise DataError(f"{path}: the pretrained Q_sarsa was trained with another observation "
                                f"normalisation ('{key}' differs), i.e. on another dataset; pretrain it on this one")
        self.q_net.load_state_dict(modules["q_sarsa"])
        self.q_target.load_state_dict(modules["q_sarsa_target"])

    @staticmethod
    def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
        state = checkpoint.load(path)
        if state.get("kind") != "q_sarsa":
            raise DataError(f"{path} is not a Q_sarsa checkpoint (kind={state.get('kind')!r})")
        return state
