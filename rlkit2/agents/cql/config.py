from __future__ import annotations

import dataclasses

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class CQLConfig(ValidatedConfig):
    """CQL(H) (Kumar et al., 2020) on SAC, with the authors' D4RL-locomotion settings.

    min_q_weight 5, 10 sampled actions, importance-sampled log-sum-exp, no Lagrange, a deterministic (entropy-free)
    backup, policy lr 1e-4 / Q lr 3e-4 (the published gym command line); `bc_steps` of behaviour cloning first (the
    authors' `policy_eval_start`; 0 switches it off).
    """

    name: str = "cql"
    batch_size: int = 256
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_alpha: float = 1.0
    target_entropy: float | None = None  # default: -act_dim
    cql_weight: float = 5.0  # alpha' in the paper (min_q_weight)
    num_sampled_actions: int = 10
    cql_temperature: float = 1.0
    importance_sample: bool = True  # log-sum-exp over uniform + policy actions, each divided by its density
    lagrange: bool = False  # learn alpha' so that the gap approaches target_action_gap
    target_action_gap: float = 10.0
    backup_entropy: bool = False  # SAC's -alpha log pi in the target (the authors' default leaves it out)
    bc_steps: int = 0
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256])
    normalize_obs: bool = True

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("batch_size", "num_sampled_actions")
        f.lr("actor_lr", "critic_lr", "alpha_lr")
        f.discount("gamma")
        f.target_rate("tau")
        f.positive("init_alpha", what="the initial entropy temperature")
        f.positive("cql_temperature")
        f.non_negative("cql_weight", what="the conservative penalty weight")
        f.finite("target_entropy", optional=True)
        f.finite("target_action_gap")
        f.budget("bc_steps")
        f.widths("hidden")
