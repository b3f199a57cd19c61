from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class SACConfig(ValidatedConfig):
    """SAC (Haarnoja et al., 2018) with automatic temperature tuning, paper defaults."""

    name: str = "sac"
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy: float | None = None  # default: -act_dim
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    replay_capacity: int = 1_000_000

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("batch_size", "replay_capacity")
        f.lr("actor_lr", "critic_lr", "alpha_lr")
        f.discount("gamma")
        f.target_rate("tau")
        f.positive("init_alpha", what="the initial entropy temperature")
        f.finite("target_entropy", optional=True)
        f.widths("hidden")
        f.batch_within("batch_size", "replay_capacity")
