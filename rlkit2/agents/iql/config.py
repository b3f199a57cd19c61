from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class IQLConfig:
    """IQL (Kostrikov et al., 2021) with its locomotion defaults (REFERENCE.md)."""

    name: str = "iql"
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    expectile: float = 0.7
    beta: float = 3.0  # inverse temperature of the advantage weights exp(beta * A)
    max_weight: float = 100.0
    actor_lr_decay_steps: int = 1_000_000  # cosine decay of the actor lr over this many updates
    reward_scaling: str = "return_range"  # "return_range": r * scale / (max - min episode return); "none"
    return_range_scale: float = 1000.0
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    normalize_obs: bool = True
