"""The policy-gradient loop for LM policies: PPO (critic + GAE), RLOO, REINFORCE, with KL to a reference.

One `step()` = one iteration: sample prompts from the environment, generate with the actor
(one batched generate with the KV cache), score with the env's reward function, compute
behaviour log-probs + values (one forward) and reference log-probs (one forward), store the
rollout in the SequenceReplay, compute KL-penalised rewards and advantages over the whole
rollout, then `ppo_epochs` passes of minibatch updates.

Swappable pieces (what WARP/BOND reuse): `reward_fn` (any `(documents, responses) -> [B]`),
`reference` (any causal LM; WARP's EMA anchor is a module whose weights a hook updates,
`learner.hooks` run after every step), and `algo` / the loss functions in `losses.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from rlkit2 import distributed
from rlkit2.agents.ppo_lm import losses as L
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.core import ConfigError, Learner, NumericalError
from rlkit2.lm.generation import LMActor, prompts_are_chat, response_logprobs
from rlkit2.lm.models import disable_dropout
from rlkit2.lm.replay import SequenceReplay


def uses_master_weights(precision: str, params: list[torch.Tensor]) -> bool:
    """`agent.precision`: fp32 master weights when asked, or ("auto") when any trained weight is bf16/fp16."""
    if precision not in ("auto", "fp32_master", "model"):
        raise ConfigError(f"agent.precision='{precision}'; expected auto, fp32_master or model")
    if precision == "auto":
        return any(p.dtype in (torch.bfloat16, torch.float16) for p in params)
    return precision == "fp32_master"


def uses_checkpointing(model: Any) -> bool:
    """Whether HF gradient checkpointing is switched on in any layer of `model`."""
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


class PolicyGradientLearner(Learner):
    """PPO / RLOO / REINFORCE on token sequences with a per-token KL penalty to `reference`."""

    def __init__(self, config: PpoLmConfig, policy: Any, reference: Any, tokenizer: Any, env: Any,
                 replay: SequenceReplay | None = None, reward_fn: Callable[..., torch.Tensor] | None = None,
                 seed: int = 0):
        if config.algo not in ("ppo", "rloo", "reinforce"):
            raise ConfigError(f"agent.algo='{config.algo}'; expected ppo, rloo or reinforce")
        if config.algo == "rloo" and config.samples_per_prompt < 2:
            raise ConfigError("agent.algo=rloo needs agent.samples_per_prompt >= 2 (the leave-one-out baseline)")
        if config.algo == "ppo" and getattr(policy, "value_head", None) is None:
            raise ConfigError("agent.algo=ppo needs a policy with a value head (PolicyWithValue(value_head=True))")
        self.config, self.policy, self.reference, self.tokenizer, self.env = config, policy, reference, tokenizer, env
        self.reward_fn = reward_fn or env.score
        self.replay = replay or SequenceReplay(seed=seed)
        self.actor = LMActor(policy, tokenizer, config.generation, chat=prompts_are_chat(env))
        # updates run in training mode where dropout is on, or where HF gradient checkpointing is (it only
        # checkpoints in training mode; dropout is off, so the function is the one the rollout sampled from)
        self.train_updates = not config.disable_dropout or uses_checkpointing(policy)
        if config.disable_dropout:
            disable_dropout(policy)
            disable_dropout(reference)
            policy.train(self.train_updates)  # eval, and kept there, without checkpointing
        params = [p for p in policy.parameters() if p.requires_grad]
        self.model_params = params
        self.master_params: list[torch.Tensor] | None = None
        if uses_master_weights(config.precision, params):
            # the optimiser steps fp32 copies; the half-precision model is refreshed from them after each step
            self.master_params = [torch.nn.Parameter(p.detach().float().clone()) for p in params]
            params = self.master_params
        # the fused kernel (one op for all parameters; TRL's default optimiser is fused AdamW too) where available
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
        self.optimizer = torch.optim.Adam(params, lr=config.lr, eps=config.adam_eps, fused=fused or None)
        # dynamic loss scaling (agent.loss_scaling): fp16 gradients would underflow in the backward pass
        scaling = config.loss_scaling == "dynamic" or (
            config.loss_scaling == "auto" and any(p.dtype == torch.float16 for p in self.model_params))
        self.scaler = torch.amp.GradScaler(params[0].device.type if params else "cpu", enabled=scaling and bool(params))
        warm = config.lr_warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warm) if warm > 0 else 1.0)
        self.kl_ctl: L.FixedKLController = (
            L.AdaptiveKLController(config.kl_coef, config.kl_target, config.kl_horizon) if config.adaptive_kl
            else L.FixedKLController(config.kl_coef))
        self.steps = 0
        self.hooks: list[Callable[[PolicyGradientLearner], None]] = []
        self.last_rollout_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ rollout
    @torch.no_grad()
    def collect(self) -> dict[str, Any]:
        """Generate, score and store one rollout; returns rollout metrics."""
        c = self.config
        t0 = time.perf_counter()
        docs = self.env.sample_documents(c.prompts_per_step)
        prompts = [self.env.format_prompt(d) for d in docs]
        k = c.samples_per_prompt
        ro = self.actor.rollout(prompts, num_samples=k)
        docs_k = [d for d in docs for _ in range(k)]
        prompts_k = [p for p in prompts for _ in range(k)]
        t_gen = time.perf_counter()
        temp = c.generation.temperature
        self.policy.eval()
        if ro.logprobs is not None and (c.algo != "ppo" or ro.values is not None):
            # the sampling loop already recorded behaviour log-probs (and values): no second policy forward
            pol = {"logprobs": ro.logprobs}
            if c.algo == "ppo":
                pol["values"] = ro.values
        else:
            pol = response_logprobs(self.policy, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask,
                                    temp, with_values=c.algo == "ppo", suppress_ids=self.actor.suppress_ids,
                                    kv_decoder=c.generation.kv_decoder)
        ref = response_logprobs(self.reference, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask, temp,
                                suppress_ids=self.actor.suppress_ids, kv_decoder=c.generation.kv_decoder)
        if self.train_updates:
            self.policy.train()
        scores = self.reward_fn(docs_k, ro.texts).float().to(ro.response_ids.device)
        t_score = time.perf_counter()
        raw_scores = scores.clone()
        if c.missing_eos_penalty:
            eos = torch.tensor(self.actor.eos_ids, device=ro.response_ids.device)
            has_eos = torch.isin(ro.response_ids, eos).any(1)
            scores = scores - c.missing_eos_penalty * (~has_eos).float()
        if c.score_clip > 0:
            scores = scores.clamp(-c.score_clip, c.score_clip)
        fields = {"query_ids": ro.query_ids, "query_mask": ro.query_mask, "response_ids": ro.response_ids,
                  "response_mask": ro.response_mask, "logprobs": pol["logprobs"], "ref_logprobs": ref["logprobs"],
                  "scores": scores, "raw_scores": raw_scores}
        if "values" in pol:
            fields["values"] = pol["values"]
        self.replay.add(fields, documents=docs_k, prompts=prompts_k, responses=ro.texts)
        n_tokens = ro.response_mask.sum()
        return {"time/generate_s": t_gen - t0, "time/score_s": t_score - t_gen,
                "rollout/response_tokens": n_tokens, "rollout/sequences": float(len(ro.texts))}

    # ------------------------------------------------------------------ advantages
    @torch.no_grad()
    def compute_advantages(self) -> dict[str, torch.Tensor]:
        c = self.config
        b = self.replay.all()
        mask = b.response_mask
        beta = self.kl_ctl.value
        kl = L.per_token_kl(b.logprobs, b.ref_logprobs, c.kl_estimator) * mask
        seq_kl = kl.sum(1)
        if c.algo == "ppo":
            rewards, _ = L.kl_penalized_rewards(b.scores, b.logprobs, b.ref_logprobs, mask, beta, c.kl_estimator)
            if c.whiten_rewards:
                rewards = L.masked_whiten(rewards, mask, shift_mean=False)
            adv, returns = L.gae(rewards, b.values, mask, c.gamma, c.lam)
            if c.whiten_advantages:
                adv = L.masked_whiten(adv, mask)
            self.replay.set("advantages", adv)
            self.replay.set("returns", returns)
        else:
            seq_reward = b.scores - beta * seq_kl
            adv = L.rloo_advantages(seq_reward, c.samples_per_prompt if c.algo == "rloo" else 1)
            if c.whiten_advantages:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8) if c.algo == "reinforce" else adv / (adv.std() + 1e-8)
            self.replay.set("advantages", adv)
        return {"train/kl": seq_kl.mean(), "train/kl_coef": torch.tensor(beta), "train/score": b.raw_scores.mean(),
                "train/reward": (b.scores - beta * seq_kl).mean(), "train/response_len": mask.sum(1).mean()}

    # ------------------------------------------------------------------ update
    def minibatch_loss(self, mb: Any, weight: float | torch.Tensor = 1.0, seq_weight: float | torch.Tensor = 1.0
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The minibatch loss of (a micro-batch of) `mb`; token means are scaled by `weight` (this micro-batch's
        share of the minibatch's response tokens) and sequence means by `seq_weight` (its share of sequences), so
        the micro-batch losses add up to the whole minibatch's loss."""
        c = self.config
        out = response_logprobs(self.policy, mb.query_ids, mb.query_mask, mb.response_ids, mb.response_mask,
                                c.generation.temperature, with_values=c.algo == "ppo",
                                return_entropy=c.entropy_coef > 0, suppress_ids=self.actor.suppress_ids,
                                kv_decoder=c.generation.kv_decoder)
        mask = mb.response_mask
        metrics: dict[str, torch.Tensor] = {}
        if c.algo == "ppo":
            pg, st = L.ppo_policy_loss(out["logprobs"], mb.logprobs, mb.advantages, mask, c.clip_range)
            vl, vst = L.clipped_value_loss(out["values"], mb.values, mb.returns, mask, c.clip_range_value)
            pg, vl = pg * weight, vl * weight
            loss = pg + c.vf_coef * vl
            metrics["train/value_loss"] = vl.detach()
            metrics.update({f"train/{k}": v * weight for k, v in vst.items()})
        else:
            clip = c.clip_range if c.ppo_epochs > 1 or c.algo == "rloo" else None
            pg, st = L.sequence_pg_loss(out["logprobs"], mb.logprobs, mb.advantages, mask, clip)
            pg = pg * (weight if clip is not None else seq_weight)
            loss = pg
        if c.entropy_coef > 0:
            ent = L.masked_mean(out["entropy"], mask) * weight
            loss = loss - c.entropy_coef * ent
            metrics["train/entropy"] = ent.detach()
        metrics.update({"train/policy_loss": pg.detach(), "train/loss": loss.detach()})
        metrics.update({f"train/{k}": v * weight for k, v in st.items()})
        return loss, metrics

    def update_minibatch(self, mb: Any) -> dict[str, torch.Tensor]:
        """One optimiser step on minibatch `mb`, as `grad_accum_steps` micro-batches (same update, less memory)."""
        c = self.config
        n = mb.response_ids.shape[0]
        parts = min(c.grad_accum_steps, n)
        bounds = [round(i * n / parts) for i in range(parts + 1)]
        tokens = mb.response_mask.sum().clamp_min(1.0)
        self.policy.train(self.train_updates)
        self.optimizer.zero_grad(set_to_none=True)
        for p in self.model_params:
            p.grad = None
        metrics: dict[str, torch.Tensor] = {}
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            micro = mb if parts == 1 else mb.index(torch.arange(lo, hi))
            w = micro.response_mask.sum().clamp_min(1.0) / tokens if parts > 1 else 1.0
            loss, m = self.minibatch_loss(micro, w, (hi - lo) / n)
            self.scaler.scale(loss).backward()  # the loss itself when loss scaling is off
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0) + v
        metrics["train/lr"] = torch.tensor(self.optimizer.param_groups[0]["lr"])  # the rate this step uses
        metrics["train/grad_norm"] = self.apply_gradients().detach()
        if self.scaler.is_enabled():
            metrics["train/loss_scale"] = torch.tensor(float(self.scaler.get_scale()))
        return metrics

    @torch.no_grad()
    def sync_master(self) -> None:
        """After weights were loaded into the policy from outside (WARP's resets and merges): the fp32 master
        copies them (a no-op without master weights)."""
        if self.master_params is None:
            return
        for mp, p in zip(self.master_params, self.model_params, strict=True):
            mp.copy_(p)

    @torch.no_grad()
    def _to_master(self) -> None:
        assert self.master_params is not None
        for mp, p in zip(self.master_params, self.model_params, strict=True):
            mp.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    def apply_gradients(self) -> torch.Tensor:
        """(fp32 master grads) -> all-reduce -> (unscale) -> clip -> step -> LR schedule -> (refresh the model from
        the master). With loss scaling, a step whose gradients hold inf/nan is skipped and the scale halves."""
        if self.master_params is not None:
            self._to_master()
        params = self.optimizer.param_groups[0]["params"]
        if distributed.is_active():
            distributed.average_gradients(params)
        self.scaler.unscale_(self.optimizer)  # no-ops without loss scaling
        gn = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.master_params is not None:
            with torch.no_grad():
                for mp, p in zip(self.master_params, self.model_params, strict=True):
                    p.copy_(mp)
        return gn

    def learn(self) -> dict[str, torch.Tensor]:
        c = self.config
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for mb in self.replay.minibatches(c.minibatch_size, c.ppo_epochs):
            for k, v in self.update_minibatch(mb).items():
                sums[k] = sums.get(k, 0) + v
            n += 1
        return {k: v / max(n, 1) for k, v in sums.items()}

    def step(self) -> dict[str, Any]:
        self.replay.clear()
        metrics: dict[str, Any] = self.collect()
        adv_metrics = self.compute_advantages()
        metrics.update(adv_metrics)
        t0 = time.perf_counter()
        metrics.update(self.learn())
        metrics["time/learn_s"] = time.perf_counter() - t0
        if not torch.isfinite(metrics["train/loss"]):
            raise NumericalError(f"ppo_lm: loss became {metrics['train/loss'].item()} at iteration {self.steps}")
        n_seq = self.config.prompts_per_step * self.config.samples_per_prompt
        self.kl_ctl.update(float(adv_metrics["train/kl"]), n_seq)
        self.steps += 1
        for hook in self.hooks:
            hook(self)
        return metrics

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "master": None if self.master_params is None else [p.detach().clone() for p in self.master_params],
                "kl_ctl": self.kl_ctl.state_dict(), "steps": self.steps, "replay": self.replay.state_dict(),
                "reference": self.reference.state_dict(),
                "env": self.env.state_dict() if hasattr(self.env, "state_dict") else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        if self.master_params is not None:
            with torch.no_grad():
                # the fp32 master (an older checkpoint without one: the loaded model's weights, upcast)
                saved = state.get("master") or [p.float() for p in self.model_params]
                for mp, v in zip(self.master_params, saved, strict=True):
                    mp.copy_(v)
        self.kl_ctl.load_state_dict(state["kl_ctl"])
        self.steps = int(state["steps"])
        self.replay.load_state_dict(state["replay"])
        if state.get("env") is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
        if "reference" in state:  # a moving anchor (WARP's EMA) must resume too
            self.reference.load_state_dict(state["reference"])
