"""BC-RNN learner: an RNN (LSTM or GRU) over normalised observations, a GMM head per step, fit by the GMM's
negative log-likelihood of the demo actions over windows of `seq_length` steps of one episode."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from rlkit2.agents.bc_rnn import losses
from rlkit2.agents.bc_rnn.config import BCRNNConfig
from rlkit2.agents.bc_rnn.sequences import SequenceSampler, episode_ends
from rlkit2.core import DataError, EnvSpec
from rlkit2.learners import TorchLearner, draw_on, learner_device, make_adam, optimizer_step, replay_generator
from rlkit2.networks import Normalizer, mlp

LOW_NOISE_STD = 1e-4  # robomimic's low-noise rollout std
RNNState = Any  # (h, c) for an LSTM, h for a GRU; None = zeros


class RNNGMMPolicy(nn.Module):
    """Normaliser -> RNN -> [MLP] -> per step a K-component GMM over actions (means max_action * tanh(.), as
    robomimic squashes its means; stds activation(.) + min_std)."""

    def __init__(self, config: BCRNNConfig, spec: EnvSpec):
        super().__init__()
        self.k, self.act_dim = int(config.num_modes), spec.act_dim
        self.max_action = spec.action_high
        self.min_std, self.std_activation = float(config.min_std), str(config.std_activation)
        self.normalizer = Normalizer(spec.obs_dim, eps=config.obs_std_eps)
        rnn_cls = nn.LSTM if config.rnn_type == "lstm" else nn.GRU
        self.rnn = rnn_cls(spec.obs_dim, int(config.rnn_dim), int(config.rnn_layers), batch_first=True)
        self.decoder = mlp(int(config.rnn_dim), self.k * (2 * self.act_dim + 1), list(config.hidden))

    def forward(self, obs: torch.Tensor, state: RNNState = None) -> tuple[torch.Tensor, ...]:
        """obs (B, T, obs_dim) -> means (B, T, K, A), stds (B, T, K, A), logits (B, T, K), the RNN's next state."""
        out, state = self.rnn(self.normalizer(obs), state)
        params = self.decoder(out)
        b, t = params.shape[:2]
        ka = self.k * self.act_dim
        means = self.max_action * torch.tanh(params[..., :ka].reshape(b, t, self.k, self.act_dim))
        stds = losses.gmm_stds(params[..., ka:2 * ka].reshape(b, t, self.k, self.act_dim), self.std_activation,
                               self.min_std)
        return means, stds, params[..., 2 * ka:], state

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log p(a_t | o_1..o_t) for each step of each window, (B, T); the RNN starts from zeros."""
        means, stds, logits, _ = self(obs)
        return losses.gmm_log_prob(actions, means, stds, logits)

    @staticmethod
    def mode(means: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The mean of the most likely component: (..., K, A), (..., K) -> (..., A)."""
        idx = logits.argmax(-1)[..., None, None].expand(*means.shape[:-2], 1, means.shape[-1])
        return means.gather(-2, idx).squeeze(-2)

    def step(self, obs: torch.Tensor, state: RNNState, eval_mode: str = "mode",
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, RNNState]:
        """One acting step: obs (B, obs_dim) and the RNN state -> action (B, A) and the next state."""
        means, _, logits, state = self(obs.unsqueeze(1), state)
        means, logits = means[:, 0], logits[:, 0]
        if eval_mode == "mode":
            return self.mode(means, logits), state
        # robomimic's low-noise rollout: a component drawn by its weight, its mean + LOW_NOISE_STD noise; drawn on
        # the CPU from the actor's generator (the same stream on every device)
        probs = torch.softmax(logits.float(), -1).cpu()
        k = draw_on(means.device, torch.multinomial(probs, 1, generator=generator).squeeze(-1))
        mean = self.mode(means, torch.nn.functional.one_hot(k, self.k).to(logits.dtype))
        noise = draw_on(means.device, torch.randn(mean.shape, generator=generator, dtype=mean.dtype))
        return mean + LOW_NOISE_STD * noise, state


class BCRNNLearner(TorchLearner):
    """One step = one batch of `batch_size` windows of `seq_length` demo steps (`SequenceSampler` over the
    replay's episodes, drawn with the replay's generator). The normaliser is fit once on the replay's
    observations. `actor_generator` is the acting actor's (low-noise rollouts), saved with the learner so a
    checkpoint or a policy file continues its stream."""

    def __init__(self, config: BCRNNConfig, spec: EnvSpec, replay: Any, seed: int = 0):
        super().__init__()
        self.config, self.replay = config, replay
        self.policy = RNNGMMPolicy(config, spec)
        if not callable(getattr(replay, "arrays", None)):  # windows need the rows in order, not single samples
            raise DataError(f"bc_rnn samples windows of consecutive steps: it needs a replay of demos in episode "
                            f"order with arrays() (a TransitionReplay), got {type(replay).__name__}")
        arrays = replay.arrays()  # rows in episode order (a fixed demo replay)
        self.obs = torch.as_tensor(arrays["observations"], dtype=torch.float32)
        self.actions = torch.as_tensor(arrays["actions"], dtype=torch.float32)
        if config.normalize_obs and len(self.obs):
            self.policy.normalizer.fit(self.obs)
        generator = getattr(replay, "generator", None)
        self.sampler = SequenceSampler(episode_ends(arrays), config.seq_length, pad=config.pad_seq_length,
                                       generator=generator if isinstance(generator, torch.Generator)
                                       else torch.Generator().manual_seed(seed))
        self.actor_generator = torch.Generator().manual_seed(seed)
        self.device = learner_device(replay)
        self.place(self.policy)
        params = list(self.policy.parameters())
        self.opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay) \
            if config.weight_decay > 0 else make_adam(params, config.lr)
        self.modules = {"policy": self.policy}
        self.optimizers = {"policy": self.opt}
        self.generators = {"actor_generator": self.actor_generator, **replay_generator(replay)}
        if "replay_generator" not in self.generators:  # the sampler's own stream when the replay has none
            self.generators["sequence_generator"] = self.sampler.generator

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observations (B, T, obs_dim), actions (B, T, A) and the padding mask (B, T), on the learner's device."""
        rows, mask = self.sampler.sample_indices(batch_size)
        flat = rows.reshape(-1)
        obs = self.obs.index_select(0, flat).reshape(*rows.shape, -1)
        act = self.actions.index_select(0, flat).reshape(*rows.shape, -1)
        return obs.to(self.device), act.to(self.device), mask.to(self.device)

    def step(self) -> dict[str, Any]:
        obs, actions, mask = self.sample(self.config.batch_size)
        means, stds, logits, _ = self.policy(obs)
        loss = losses.sequence_nll(losses.gmm_log_prob(actions, means, stds, logits), mask)
        optimizer_step(self.opt, loss)
        self.num_steps += 1
        with torch.no_grad():  # the greedy action's error on this batch (before the update)
            mse = losses.masked_mse(self.policy.mode(means.detach(), logits.detach()), actions, mask)
        return {"bc_loss": loss.detach(), "action_mse": mse}
