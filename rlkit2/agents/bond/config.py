"""Typed config of BOND / J-BOND (Sessa et al., 2024)."""

from __future__ import annotations

import dataclasses

from rlkit2.agents.ppo_lm.config import check_lm, refuse_lora
from rlkit2.lm.generation import GenerationConfig
from rlkit2.lm.models import LMConfig
from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class JBondConfig(ValidatedConfig):
    """J-BOND defaults: one policy sample and two anchor samples a prompt, Jeffreys beta = 0.5, an EMA anchor
    with eta = 0.02 (iterative BOND distilling Best-of-2 of the moving anchor), reward -log 16 below both.

    `variant="bond"`: plain (iterated) BOND towards Best-of-`n` of the anchor, p<= estimated from the same `n`
    anchor samples, backward reward (n - 1) log p^<= (floored at 1/(2n)); `anchor_rate=0` keeps the anchor at
    the reference (non-iterative BOND).
    """

    name: str = "jbond"
    model: LMConfig = dataclasses.field(default_factory=LMConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    init_checkpoint: str = ""  # rlkit2 checkpoint with {"lm": state_dict}: the reference and first anchor
    variant: str = "jbond"  # "jbond" | "bond"
    n: int = 2  # Best-of-n of the anchor (J-BOND: 2)
    beta: float = 0.5  # Jeffreys mix: (1 - beta) forward KL + beta backward KL
    anchor_rate: float = 0.02  # eta: theta_anchor <- (1 - eta) theta_anchor + eta theta after every step
    ref_kl_coef: float = 0.0  # optional extra KL(pi || pi_ref) (J-BOND's gamma)
    prompts_per_step: int = 16
    lr: float = 1e-4
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0

    @classmethod
    def check(cls, f: Fields) -> None:
        check_lm(f)
        refuse_lora(f, "jbond")
        f.choice("variant", ("jbond", "bond"))
        f.count("n", minimum=2, what="Best-of-n needs two anchor samples or more")
        f.probability("beta", label="the Jeffreys mix must")
        f.probability("anchor_rate", label="the anchor's EMA rate must")
        f.non_negative("ref_kl_coef")
