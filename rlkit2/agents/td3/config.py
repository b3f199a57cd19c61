from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TD3Config:
    """TD3 (Fujimoto et al., 2018) with its paper defaults."""

    name: str = "td3"
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2  # target policy smoothing noise (fraction of max action)
    noise_clip: float = 0.5
    policy_freq: int = 2  # actor and targets updated every `policy_freq` critic steps
    exploration_noise: float = 0.1
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    replay_capacity: int = 1_000_000
