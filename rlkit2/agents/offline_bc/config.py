from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class OfflineBCConfig(ValidatedConfig):
    """Behaviour cloning on an offline RL dataset: TD3+BC's actor (network, tanh output, dataset observation
    normalisation, optimiser) trained on the BC term alone, the reference row of the offline tables."""

    name: str = "offline_bc"
    batch_size: int = 256
    lr: float = 3e-4  # TD3+BC's actor learning rate
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    normalize_obs: bool = True  # dataset mean/std, carried by the saved policy

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("batch_size")
        f.lr("lr")
        f.widths("hidden")
