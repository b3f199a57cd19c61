from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class TD3BCConfig(ValidatedConfig):
    """TD3+BC (Fujimoto & Gu, 2021) with the hyper-parameters the paper reports."""

    name: str = "td3_bc"
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2  # target policy smoothing noise (fraction of max action)
    noise_clip: float = 0.5
    policy_freq: int = 2  # actor and targets updated every `policy_freq` critic steps
    alpha: float = 2.5  # lambda = alpha / mean|Q(s, pi(s))|
    bc_weight: float = 1.0  # weight of the (pi(s) - a)^2 term (1 in TD3+BC)
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    normalize_obs: bool = True  # dataset mean/std, carried by the saved policy

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("batch_size")
        f.lr("actor_lr", "critic_lr")
        f.discount("gamma")
        f.target_rate("tau")
        f.non_negative("policy_noise", "noise_clip", what="a noise scale")
        f.steps("policy_freq")
        f.non_negative("alpha", "bc_weight", what="a loss coefficient")
        f.widths("hidden")
