"""Typed config of the PPO-style LM learner (and its RLOO / REINFORCE variants)."""

from __future__ import annotations

import dataclasses

from rlkit2.core import ConfigError
from rlkit2.lm.generation import GenerationConfig
from rlkit2.lm.models import LMConfig
from rlkit2.validation import Fields, ValidatedConfig


def check_lm(f: Fields) -> None:
    """The fields every language agent shares: the tiny model's sizes, generation, the optimiser."""
    m = f.sub("model")
    m.count("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_position_embeddings",
            "sliding_window")
    m.probability("dropout", label="a dropout rate must")
    g = f.sub("generation")
    g.count("max_new_tokens", "max_prompt_tokens")
    g.count("top_k", "min_new_tokens", minimum=0, what="0: off")
    g.positive("temperature", what="the sampling temperature")
    g.probability("top_p", label="a nucleus mass must")
    g.choice("backend", ("auto", "loop", "hf"))
    g.indices("eos_token_ids")
    f.count("prompts_per_step")
    f.lr("lr")
    f.positive("adam_eps", "max_grad_norm")
    check_lora(f)


def check_lora(f: Fields) -> None:
    """`model.lora`: rank >= 0 (0: off), alpha > 0, dropout in [0, 1] and only with dropout left on, targets."""
    lo = f.sub("model").sub("lora")
    lo.count("r", minimum=0, what="0: off")
    lo.positive("alpha", what="LoRA's scale is alpha / r")
    lo.probability("dropout", label="a dropout rate must")
    if lo.has("target_modules"):
        t = lo.get("target_modules")
        if isinstance(t, str) or not t or any(not isinstance(x, str) or not x for x in t):
            raise ConfigError(f"{lo.name('target_modules')}={t!r}: expected a non-empty list of module names "
                              "(e.g. [q_proj, k_proj, v_proj, o_proj])")
    if lo.has("dropout") and f.has("disable_dropout") and f.get("disable_dropout"):
        d = lo.get("dropout")
        if isinstance(d, int | float) and d > 0:
            raise ConfigError(f"{lo.name('dropout')}={d} has no effect while {f.name('disable_dropout')}=true "
                              "(every dropout is zeroed); set it to 0 or turn disable_dropout off")


def refuse_lora(f: Fields, agent: str) -> None:
    """Agents whose anchors are copies of the policy's weights (WARP's EMA, J-BOND's) train the full model."""
    lo = f.sub("model").sub("lora")
    if lo.has("r") and isinstance(lo.get("r"), int) and lo.get("r") > 0:
        raise ConfigError(f"{lo.name('r')}={lo.get('r')}: {agent} does not support LoRA adapters (its anchor is a "
                          "moving copy of the full weights); use ppo_lm, or r=0")


@dataclasses.dataclass
class PpoLmConfig(ValidatedConfig):
    name: str = "ppo_lm"
    model: LMConfig = dataclasses.field(default_factory=LMConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)
    init_checkpoint: str = ""  # rlkit2 checkpoint with {"lm": state_dict} (e.g. the SFT policy); also the reference
    algo: str = "ppo"  # "ppo" (critic + GAE) | "rloo" (leave-one-out baseline, no critic) | "reinforce"
    prompts_per_step: int = 16  # prompts per rollout
    samples_per_prompt: int = 1  # k; RLOO needs >= 2
    ppo_epochs: int = 2
    minibatch_size: int = 16
    lr: float = 1e-4
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    entropy_coef: float = 0.0
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    kl_estimator: str = "k1"  # in the reward: k1 (Ziegler/Roit) | k3 | k2
    adaptive_kl: bool = False
    kl_target: float = 1.0  # per-sequence KL target of the adaptive controller
    kl_horizon: int = 10_000
    whiten_rewards: bool = False
    whiten_advantages: bool = True
    score_clip: float = 0.0  # > 0: clip sequence scores to [-c, c]
    missing_eos_penalty: float = 0.0  # subtracted from the score of a response that never emits EOS
    # dropout off in policy, reference and value head during rollouts and updates (the first on-policy ratio is 1)
    disable_dropout: bool = True
    # "auto": fp32 master weights when model.dtype is bf16/fp16 (the optimiser steps an fp32 copy, the half-precision
    # model is refreshed from it), the model's own weights otherwise; "fp32_master": always; "model": step the
    # model's weights in their dtype (bf16 Adam steps round away most small updates)
    precision: str = "auto"
    grad_accum_steps: int = 1  # each minibatch runs as this many micro-batches whose gradients add up to its own
    lr_warmup_steps: int = 0  # optimiser steps of linear LR warm-up from lr/lr_warmup_steps to lr (0: constant lr)
    # fp16 gradients underflow (|g| < 6e-8 becomes 0) in the backward pass, before fp32 master weights can help
    # (those only keep the *update* from rounding away). "auto": dynamic loss scaling (torch.amp.GradScaler: the
    # loss is multiplied by a scale that halves on inf/nan gradients, whose step is skipped, and doubles after
    # 2000 clean steps) when any trained weight is fp16; "dynamic": always; "off": never (bf16 has fp32's range
    # and needs none)
    loss_scaling: str = "auto"

    @classmethod
    def check(cls, f: Fields) -> None:
        check_lm(f)
        f.choice("algo", ("ppo", "rloo", "reinforce"))
        f.count("samples_per_prompt", "ppo_epochs", "minibatch_size", "kl_horizon")
        f.positive("clip_range", what="the PPO ratio clip")
        f.non_negative("clip_range_value", "vf_coef", "kl_coef", "score_clip")
        f.finite("entropy_coef", "missing_eos_penalty")
        f.positive("kl_target", what="the adaptive KL target")
        f.discount("gamma")
        f.probability("lam", label="the GAE lambda must")
        f.choice("kl_estimator", ("k1", "k2", "k3"))
        f.choice("precision", ("auto", "fp32_master", "model"))
        f.choice("loss_scaling", ("auto", "dynamic", "off"))
        f.count("grad_accum_steps")
        f.budget("lr_warmup_steps")
        if f.has("grad_accum_steps") and f.has("minibatch_size"):
            acc, mb = f.get("grad_accum_steps"), f.get("minibatch_size")
            if isinstance(acc, int) and isinstance(mb, int) and acc > mb:
                raise ConfigError(f"{f.name('grad_accum_steps')}={acc} is larger than {f.name('minibatch_size')}={mb}"
                                  "; a micro-batch needs at least one sequence")
