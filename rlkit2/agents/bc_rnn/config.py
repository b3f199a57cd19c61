from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class BCRNNConfig(ValidatedConfig):
    """BC-RNN with a GMM head (robomimic's BC-RNN-GMM, low-dim). The network and training defaults are robomimic's
    (Mandlekar et al., 2021): 2-layer LSTM of 400 units, windows of 10 steps, 5 modes, min std 1e-4, softplus,
    Adam 1e-4, batch 100. Two defaults differ from robomimic's: evaluation acts with the most likely mode's mean
    (`eval_mode="mode"`; robomimic's low-noise sampling is `eval_mode="low_noise"`), and observations are
    normalised with the demos' mean/std as `bc` does (`normalize_obs`; robomimic's low-dim default does not)."""

    name: str = "bc_rnn"
    rnn_type: str = "lstm"  # "lstm" or "gru"
    rnn_dim: int = 400  # robomimic's algo.rnn.hidden_dim
    rnn_layers: int = 2
    # training window length and the rollout's rnn_horizon: the recurrent state restarts from zero every
    # seq_length steps when acting, as it does at the start of every training window
    seq_length: int = 10
    # MLP between the RNN and the GMM's linear heads (robomimic's actor_layer_dims: none for BC-RNN)
    hidden: list[int] = dataclasses.field(default_factory=list)
    num_modes: int = 5
    min_std: float = 1e-4  # added to every component's std
    std_activation: str = "softplus"  # raw scale -> std: "softplus" or "exp"
    # acting: "mode" = the mean of the most likely component (deterministic); "low_noise" = robomimic's
    # low-noise rollout (a component drawn by its weight, its mean + 1e-4 noise), from the actor's own seeded
    # generator, which checkpoints and policy files carry
    eval_mode: str = "mode"
    lr: float = 1e-4
    weight_decay: float = 0.0  # robomimic's L2 regularisation (0); > 0 switches to AdamW
    batch_size: int = 100  # windows per update
    # true: a window may start at any step, and one running past its episode's end is padded with the episode's
    # last step (robomimic's pad_seq_length), the padding left out of the loss; false: only full windows
    # inside one episode (an episode shorter than seq_length then contributes nothing)
    pad_seq_length: bool = True
    normalize_obs: bool = True  # demo mean/std, stored with the policy (as bc does)
    obs_std_eps: float = 1e-2

    @classmethod
    def check(cls, f: Fields) -> None:
        f.choice("rnn_type", ("lstm", "gru"))
        f.count("rnn_dim", "rnn_layers", "seq_length", "num_modes", "batch_size")
        f.widths("hidden")
        f.positive("min_std", what="a std floor")
        f.choice("std_activation", ("softplus", "exp"))
        f.choice("eval_mode", ("mode", "low_noise"))
        f.lr("lr")
        f.non_negative("weight_decay", "obs_std_eps")
