from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class TD3UpdateConfig(ValidatedConfig):
    """The settings of TD3's update (twin critics, smoothed targets, delayed actor), shared by TD3 and TD3+BC."""

    name: str = ""
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2  # target policy smoothing noise (fraction of max action)
    noise_clip: float = 0.5
    policy_freq: int = 2  # actor and targets updated every `policy_freq` critic steps
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("batch_size")
        f.lr("actor_lr", "critic_lr")
        f.discount("gamma")
        f.target_rate("tau")
        f.non_negative("policy_noise", "noise_clip", what="a noise scale")
        f.steps("policy_freq")
        f.widths("hidden")


@dataclasses.dataclass
class TD3Config(TD3UpdateConfig):
    """TD3 (Fujimoto et al., 2018) with its paper defaults."""

    name: str = "td3"
    exploration_noise: float = 0.1
    replay_capacity: int = 1_000_000

    @classmethod
    def check(cls, f: Fields) -> None:
        super().check(f)
        f.count("replay_capacity")
        f.non_negative("exploration_noise", what="a noise scale")
        f.batch_within("batch_size", "replay_capacity")
