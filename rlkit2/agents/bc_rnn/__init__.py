"""BC-RNN: behaviour cloning with a recurrent policy and a Gaussian-mixture head (family "imitation").

robomimic's strongest low-dim baseline, BC-RNN-GMM (Mandlekar et al., 2021, "What Matters in Learning from
Offline Human Demonstrations for Robot Manipulation"), with its defaults: a 2-layer LSTM of 400 units over
windows of 10 consecutive demo steps (`sequences.SequenceSampler`: never across an episode boundary; windows
running past an episode's end are padded and the padding masked out of the loss), a 5-mode GMM per step (means
tanh-squashed, stds softplus + 1e-4), its NLL averaged over the window (`losses`), Adam at 1e-4, 100 windows a
batch, observations normalised with the demos' statistics (as `bc`). Acting (`actor.RecurrentActor`) carries
the RNN state, restarting it at each episode's start and every `seq_length` steps (robomimic's rnn_horizon);
the action is the most likely component's mean (`eval_mode=mode`) or robomimic's low-noise sample
(`eval_mode=low_noise`, from a seeded generator saved with the learner).

Trained by `rlkit2.run.imitation` exactly as `bc`: `rlkit2-train experiment=bc_rnn_lift`.
"""

from __future__ import annotations

from rlkit2.agents.bc_rnn.actor import RecurrentActor
from rlkit2.agents.bc_rnn.builder import make_agent
from rlkit2.agents.bc_rnn.config import BCRNNConfig
from rlkit2.agents.bc_rnn.learner import BCRNNLearner, RNNGMMPolicy
from rlkit2.agents.bc_rnn.sequences import SequenceSampler, episode_ends
from rlkit2.config import store
from rlkit2.registry import register_agent

store("bc_rnn_schema", BCRNNConfig, group="agent")
register_agent("bc_rnn", BCRNNConfig, "imitation", make_agent, offline=True)

__all__ = ["BCRNNConfig", "BCRNNLearner", "RNNGMMPolicy", "RecurrentActor", "SequenceSampler", "episode_ends",
           "make_agent"]
