"""WARP: Weight Averaged Rewarded Policies (Ramé et al., 2024).

Stage 1 (exploration): M independent RL runs from the same init, each with reward r - beta * KL(pi || pi_ema),
  the anchor an EMA of the policy itself (theta_ema <- (1 - mu) theta_ema + mu theta). This reuses
  `PolicyGradientLearner` unchanged: its `reference` is the anchor module and a post-step hook moves it.
Stage 2 (merging): theta_slerp = theta_init + layer-wise SLERP of the task vectors theta_m - theta_init.
Stage 3 (LITI): theta_next = (1 - eta) theta_init + eta theta_slerp, which initialises the next iteration.

The M runs are sequential here (one process); each starts from the iteration's init with a fresh optimizer
and a fresh anchor, and sees its own prompts and sampling noise (the env's stream and the RNG move on).
`reference` (what evaluation measures KL against) is the frozen *original* init (the SFT policy), the KL
that WARP's KL-reward fronts report; the EMA anchor is `anchor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
from rlkit2.agents.warp.config import WarpConfig
from rlkit2.core import ConfigError, Learner
from rlkit2.merging import ema_update, liti, slerp_merge


def _clone(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sd.items()}


class WarpLearner(Learner):
    def __init__(self, config: WarpConfig, inner: PolicyGradientLearner, sft_reference: Any):
        if config.num_policies < 1 or config.steps_per_run < 1:
            raise ConfigError(f"warp: need num_policies >= 1 and steps_per_run >= 1 (got {config.num_policies}, "
                              f"{config.steps_per_run})")
        if config.slerp_weights and len(config.slerp_weights) != config.num_policies:
            raise ConfigError(f"warp: slerp_weights has {len(config.slerp_weights)} entries for "
                              f"num_policies={config.num_policies}")
        if not 0.0 <= config.liti_eta <= 1.0 or not 0.0 <= config.ema_rate <= 1.0:
            raise ConfigError(f"warp: liti_eta and ema_rate must lie in [0, 1] (got {config.liti_eta}, "
                              f"{config.ema_rate})")
        self.config, self.inner, self.reference = config, inner, sft_reference
        self.init_sd = _clone(self.lm.state_dict())  # theta_init of the current iteration
        self.finished: list[dict[str, torch.Tensor]] = []  # final weights of this iteration's runs
        self.last_iteration: dict[str, Any] = {}  # init, runs, slerp, liti of the last merge (for fronts)
        self.steps = 0
        inner.hooks.append(self._move_anchor)

    # ------------------------------------------------------------------ views the runner uses
    @property
    def policy(self) -> Any:
        return self.inner.policy

    @property
    def lm(self) -> Any:
        return getattr(self.inner.policy, "lm", self.inner.policy)

    @property
    def anchor(self) -> Any:
        return self.inner.reference

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    @property
    def replay(self) -> Any:
        return self.inner.replay

    @property
    def actor(self) -> Any:
        return self.inner.actor

    @property
    def iteration(self) -> int:
        return self.steps // (self.config.steps_per_run * self.config.num_policies)

    @property
    def run(self) -> int:
        return (self.steps // self.config.steps_per_run) % self.config.num_policies

    # ------------------------------------------------------------------ stages
    def _move_anchor(self, inner: PolicyGradientLearner) -> None:
        ema_update(inner.reference, self.lm, self.config.ema_rate)

    def _start_run(self) -> None:
        self.lm.load_state_dict(self.init_sd)
        self.inner.sync_master()  # bf16/fp16 policies: the fp32 master follows the loaded weights
        self.anchor.load_state_dict(self.init_sd)
        if self.config.reset_optimizer:
            self.inner.optimizer.state.clear()

    def merge(self, runs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stages 2 and 3 on the finished runs; returns (and loads) the next iteration's init."""
        weights = list(self.config.slerp_weights) or None
        merged = slerp_merge(self.init_sd, runs, weights)
        nxt = liti(self.init_sd, merged, self.config.liti_eta)
        self.last_iteration = {"init": self.init_sd, "runs": runs, "slerp": merged, "liti": nxt}
        self.init_sd = _clone(nxt)
        self.lm.load_state_dict(self.init_sd)
        self.inner.sync_master()
        return nxt

    def step(self) -> dict[str, Any]:
        c = self.config
        if self.steps % c.steps_per_run == 0:
            self._start_run()
        metrics = self.inner.step()
        metrics["warp/iteration"] = float(self.iteration)
        metrics["warp/run"] = float(self.run)
        self.steps += 1
        if self.steps % c.steps_per_run == 0:
            self.finished.append(_clone(self.lm.state_dict()))
            if len(self.finished) == c.num_policies:
                self.merge(self.finished)
                self.finished = []
                metrics["warp/merged"] = 1.0
        return metrics

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        state = {"inner": self.inner.state_dict(), "init": self.init_sd, "finished": self.finished,
                 "steps": self.steps, "sft_reference": self.reference.state_dict()}
        if self.config.record_merges:  # agent.record_merges: what the last merge combined, for fronts
            state["last_iteration"] = {k: self.last_iteration[k] for k in ("init", "runs", "slerp")
                                       } if self.last_iteration else {}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state["inner"])
        self.init_sd = _clone(state["init"])
        self.finished = [_clone(s) for s in state["finished"]]
        self.steps = int(state["steps"])
        self.reference.load_state_dict(state["sft_reference"])
        last = state.get("last_iteration") or {}
        self.last_iteration = {**last, "liti": self.init_sd} if last else {}  # LITI's result is the next init
