"""Typed config of WARP (Ramé et al., 2024): the PPO-LM learner's fields plus the three WARP stages."""

from __future__ import annotations

import dataclasses

from rlkit2.agents.ppo_lm.config import PpoLmConfig, refuse_lora
from rlkit2.validation import Fields


@dataclasses.dataclass
class WarpConfig(PpoLmConfig):
    """Defaults from the paper: REINFORCE with a (leave-one-out) baseline, beta = 0.1 towards an EMA anchor
    updated with mu = 0.01, M policies merged by layer-wise SLERP of their task vectors, LITI with eta = 0.3.

    One learner step is one RL step of the current run. The schedule: `iterations` x `num_policies` runs of
    `steps_per_run` steps each, run sequentially (so set trainer.total_steps to their product); after the M-th
    run of an iteration the runs are merged and interpolated towards the iteration's init, and the result
    initialises the next iteration.
    """

    name: str = "warp"
    algo: str = "rloo"  # REINFORCE with a baseline (the leave-one-out mean of the other samples)
    samples_per_prompt: int = 2
    ppo_epochs: int = 1
    kl_coef: float = 0.1  # beta
    ema_rate: float = 0.01  # mu: theta_ema <- (1 - mu) theta_ema + mu theta after every step
    num_policies: int = 2  # M
    steps_per_run: int = 100  # T
    iterations: int = 2  # I
    slerp_weights: list[float] = dataclasses.field(default_factory=list)  # empty: uniform (lambda = 1/M)
    liti_eta: float = 0.3
    reset_optimizer: bool = True  # every run starts with fresh Adam moments (independent runs)
    # the learner's state (so every checkpoint) also holds the last merge's init, runs and SLERP result
    # (`last_iteration`: M + 2 more copies of the weights), from which a KL-reward front is evaluated; off, a
    # checkpoint taken after a merge no longer holds the iteration's last run
    record_merges: bool = False

    @classmethod
    def check(cls, f: Fields) -> None:
        super().check(f)
        refuse_lora(f, "warp")
        f.probability("ema_rate", "liti_eta", label="an interpolation rate must")
        f.count("num_policies", "steps_per_run", "iterations")
        f.weights("slerp_weights")
