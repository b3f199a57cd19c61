from __future__ import annotations

import dataclasses

from rlkit2.agents.td3.config import TD3UpdateConfig
from rlkit2.validation import Fields


@dataclasses.dataclass
class TD3BCConfig(TD3UpdateConfig):
    """TD3+BC (Fujimoto & Gu, 2021) with the hyper-parameters the paper reports: TD3's update plus a BC term."""

    name: str = "td3_bc"
    alpha: float = 2.5  # lambda = alpha / mean|Q(s, pi(s))|
    bc_weight: float = 1.0  # weight of the (pi(s) - a)^2 term (1 in TD3+BC)
    normalize_obs: bool = True  # dataset mean/std, carried by the saved policy

    @classmethod
    def check(cls, f: Fields) -> None:
        super().check(f)
        f.non_negative("alpha", "bc_weight", what="a loss coefficient")
