from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class IQLConfig(ValidatedConfig):
    """IQL (Kostrikov et al., 2021) with the hyper-parameters the paper reports for the locomotion tasks."""

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

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("batch_size")
        f.lr("actor_lr", "critic_lr", "value_lr")
        f.discount("gamma")
        f.target_rate("tau")
        f.in_range("expectile", 0, 1, lo_open=True, hi_open=True, label="an expectile must")
        f.non_negative("beta", what="the inverse temperature of the advantage weights")
        f.positive("max_weight", "return_range_scale")
        f.budget("actor_lr_decay_steps")
        f.choice("reward_scaling", ("return_range", "none"))
        f.widths("hidden")
