"""The J-BOND (and iterated BOND) learner: distil Best-of-n of a moving EMA anchor into the policy.

One `step()`: sample prompts; one response from the policy and n from the anchor (J-BOND: n = 2); score all
with the reward function; loss = (1 - beta) * forward KL (NLL of the best anchor sample under the policy)
+ beta * backward KL (REINFORCE on the policy sample with the J-BOND reward and a KL to the anchor); one
Adam step; the anchor moves towards the policy by EMA (eta). Log-probs of the policy on its own sample and
on the best anchor sample come from one teacher-forced forward over the concatenated batch.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from typing import Any

import torch

from rlkit2.agents.bond import losses as BL
from rlkit2.agents.bond.config import JBondConfig
from rlkit2.core import ConfigError, Learner, NumericalError
from rlkit2.learners import optimizer_step
from rlkit2.lm.generation import LMActor, Rollout, prompts_are_chat, response_logprobs
from rlkit2.lm.replay import SequenceReplay
from rlkit2.merging import ema_update


def _stack_rollouts(a: Rollout, b: Rollout, pad_id: int) -> tuple[torch.Tensor, ...]:
    """Concatenate two rollouts of the same prompts row-wise (responses right-padded to one width)."""
    t = max(a.response_ids.shape[1], b.response_ids.shape[1])

    def pad(x: torch.Tensor, v: float) -> torch.Tensor:
        return torch.cat([x, x.new_full((x.shape[0], t - x.shape[1]), v)], 1) if x.shape[1] < t else x

    lq = max(a.query_ids.shape[1], b.query_ids.shape[1])

    def lpad(x: torch.Tensor, v: float) -> torch.Tensor:
        return torch.cat([x.new_full((x.shape[0], lq - x.shape[1]), v), x], 1) if x.shape[1] < lq else x

    q = torch.cat([lpad(a.query_ids, pad_id), lpad(b.query_ids, pad_id)])
    qm = torch.cat([lpad(a.query_mask, 0), lpad(b.query_mask, 0)])
    r = torch.cat([pad(a.response_ids, pad_id), pad(b.response_ids, pad_id)])
    rm = torch.cat([pad(a.response_mask, 0.0), pad(b.response_mask, 0.0)])
    return q, qm, r, rm


def _select_rows(ro: Rollout, rows: torch.Tensor) -> Rollout:
    idx = rows.to(ro.response_ids.device)
    return Rollout(ro.query_ids[idx], ro.query_mask[idx], ro.response_ids[idx], ro.response_mask[idx],
                   [ro.texts[i] for i in rows.tolist()])


class JBondLearner(Learner):
    def __init__(self, config: JBondConfig, policy: Any, reference: Any, tokenizer: Any, env: Any,
                 reward_fn: Any = None, replay: SequenceReplay | None = None, seed: int = 0):
        if config.variant not in ("jbond", "bond"):
            raise ConfigError(f"agent.variant='{config.variant}'; expected jbond or bond")
        if config.variant == "jbond" and config.n != 2:
            raise ConfigError(f"agent.variant=jbond uses two anchor samples (agent.n=2), got n={config.n}")
        if config.n < 2:
            raise ConfigError(f"agent.n={config.n}: Best-of-n needs n >= 2 anchor samples")
        if not 0.0 <= config.beta <= 1.0 or not 0.0 <= config.anchor_rate <= 1.0:
            raise ConfigError(f"agent.beta and agent.anchor_rate must lie in [0, 1] (got {config.beta}, "
                              f"{config.anchor_rate})")
        self.config, self.policy, self.reference, self.tokenizer, self.env = config, policy, reference, tokenizer, env
        self.reward_fn = reward_fn or env.score
        self.anchor = copy.deepcopy(reference)  # starts at the reference; moves by EMA
        self.replay = replay or SequenceReplay(seed=seed)
        chat = prompts_are_chat(env)  # both actors encode the prompts alike: the stacked query ids agree
        self.actor = LMActor(policy, tokenizer, config.generation, chat=chat)
        self.anchor_actor = LMActor(self.anchor, tokenizer, config.generation, chat=chat)
        self.optimizer = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=config.lr,
                                          eps=config.adam_eps)
        self.steps = 0

    @property
    def lm(self) -> Any:
        return getattr(self.policy, "lm", self.policy)

    def step(self) -> dict[str, Any]:
        c = self.config
        t0 = time.perf_counter()
        docs = self.env.sample_documents(c.prompts_per_step)
        prompts = [self.env.format_prompt(d) for d in docs]
        B, n = len(prompts), c.n
        with torch.no_grad():
            ro_pol = self.actor.rollout(prompts, num_samples=1)
            ro_anc = self.anchor_actor.rollout(prompts, num_samples=n)
        t_gen = time.perf_counter()
        r_pol = self.reward_fn(docs, ro_pol.texts).float()
        r_anc = self.reward_fn([d for d in docs for _ in range(n)], ro_anc.texts).float().view(B, n)
        t_score = time.perf_counter()
        best = BL.best_of_n_index(r_anc)
        ro_best = _select_rows(ro_anc, torch.arange(B) * n + best)
        q, qm, r, rm = _stack_rollouts(ro_pol, ro_best, self.tokenizer.pad_token_id)
        temp = c.generation.temperature
        self.lm.train()
        lp = (response_logprobs(self.lm, q, qm, r, rm, temp)["logprobs"] * rm).sum(1)
        logp_pol, logp_best = lp[:B], lp[B:]
        with torch.no_grad():
            logp_anc_pol = (response_logprobs(self.anchor, ro_pol.query_ids, ro_pol.query_mask, ro_pol.response_ids,
                                              ro_pol.response_mask, temp)["logprobs"] * ro_pol.response_mask).sum(1)
            logp_ref_pol = None
            if c.ref_kl_coef:
                logp_ref_pol = (response_logprobs(self.reference, ro_pol.query_ids, ro_pol.query_mask,
                                                  ro_pol.response_ids, ro_pol.response_mask, temp)["logprobs"]
                                * ro_pol.response_mask).sum(1)
        if c.variant == "jbond":
            loss, stats = BL.jbond_loss(logp_pol, logp_anc_pol, logp_best, r_pol, r_anc[:, 0], r_anc[:, 1], c.beta,
                                        logp_ref_pol, c.ref_kl_coef)
        else:
            q_hat = BL.quantile_estimate(r_pol, r_anc)
            reward = BL.bond_reward(q_hat, n, min_quantile=1.0 / (2 * n))
            fwd = BL.forward_kl_loss(logp_best)
            bwd, est = BL.backward_kl_loss(logp_pol, logp_anc_pol, reward)
            loss = BL.jeffreys(fwd, bwd, c.beta)
            stats = {"bond_reward": reward.mean(), "quantile": q_hat.mean(), "forward_nll": fwd.detach(),
                     "backward_kl_est": est.mean(), "kl_to_anchor": (logp_pol - logp_anc_pol).detach().mean()}
        if not math.isfinite(float(loss.detach())):
            raise NumericalError(f"jbond: loss became {float(loss)} at step {self.steps}")
        # The shared step: gradients are all-reduced when the lm runner is data-parallel.
        gn = optimizer_step(self.optimizer, loss, self.optimizer.param_groups[0]["params"], c.max_grad_norm)
        assert gn is not None  # a max_grad_norm was given, so the norm is returned
        ema_update(self.anchor, self.lm, c.anchor_rate)
        self.steps += 1
        self.replay.clear()
        self.replay.add({"query_ids": ro_pol.query_ids, "query_mask": ro_pol.query_mask,
                         "response_ids": ro_pol.response_ids, "response_mask": ro_pol.response_mask,
                         "logprobs_seq": logp_pol.detach(), "scores": r_pol},
                        documents=docs, prompts=prompts, responses=ro_pol.texts)
        metrics: dict[str, Any] = {f"train/{k}": v for k, v in stats.items()}
        metrics.update({"train/loss": loss.detach(), "train/grad_norm": gn.detach(), "train/score": r_pol.mean(),
                        "train/anchor_score": r_anc.mean(), "train/best_anchor_score": r_anc.max(1).values.mean(),
                        "train/response_len": ro_pol.response_mask.sum(1).mean(),
                        "time/generate_s": t_gen - t0, "time/score_s": t_score - t_gen,
                        "time/learn_s": time.perf_counter() - t_score})
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "anchor": self.anchor.state_dict(),
                "optimizer": self.optimizer.state_dict(), "steps": self.steps,
                # where the prompt stream is: without it a resumed run trains on other prompts
                "env": self.env.state_dict() if hasattr(self.env, "state_dict") else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.anchor.load_state_dict(state["anchor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
        if state.get("env") is not None and hasattr(self.env, "load_state_dict"):
            self.env.load_state_dict(state["env"])
