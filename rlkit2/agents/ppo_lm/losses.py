"""Pure loss functions for policy-gradient RL on token sequences (PPO, RLOO, REINFORCE).

Shapes: per-token tensors are `[B, T]` over *response* tokens, with `mask` `[B, T]`
(1 on real response tokens, 0 on padding after EOS). Sequence-level tensors are `[B]`.
Everything here is a function of tensors only, so WARP/BOND-style variants can reuse
the pieces (KL-to-anchor penalty, advantages, clipped objective) without the learner.
"""

from __future__ import annotations

import torch


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return (x * mask).sum() if dim is None else (x * mask).sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp_min(1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1).clamp_min(1.0)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries; `shift_mean=False` keeps the mean (reward whitening)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from samples of pi.

    k1 = log pi - log ref (unbiased, can be negative; what Ziegler et al./Roit et al. put in the reward);
    k3 = exp(-k1) - 1 + k1 (unbiased, always >= 0, lower variance; Schulman's estimator);
    k2 = 0.5 * k1^2 (biased, >= 0).
    """
    d = logprobs - ref_logprobs
    if estimator == "k1":
        return d
    if estimator == "k2":
        return 0.5 * d**2
    if estimator == "k3":
        return torch.expm1(-d) + d
    raise ValueError(f"unknown KL estimator '{estimator}' (expected k1, k2 or k3)")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row ([B], 0 for an empty row)."""
    t = torch.arange(mask.shape[1], device=mask.device)
    return (mask * t).amax(1).long()


def kl_penalized_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float | torch.Tensor,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rewards r_t = -beta * KL_t, plus the sequence score on the last response token.

    Returns (rewards [B, T], kl [B, T]); both zero on padding.
    """
    kl = per_token_kl(logprobs, ref_logprobs, estimator) * mask
    rewards = -kl_coef * kl
    idx = last_token_index(mask)
    rewards = rewards.scatter_add(1, idx[:, None], scores[:, None].to(rewards.dtype))
    return rewards * mask, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens.

    The episode ends after the last real token (bootstrap value 0 there); padding steps get
    advantage 0. Returns (advantages, returns = advantages + values), both `[B, T]`.
    """
    B, T = rewards.shape
    adv = torch.zeros_like(rewards)
    last = torch.zeros(B, dtype=rewards.dtype, device=rewards.device)
    values = values * mask
    for t in reversed(range(T)):
        next_v = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + values) * mask


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate: mean_t max(-A r, -A clip(r, 1-e, 1+e)), r = pi/pi_old per token."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), mask),
            "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss, stats


def clipped_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """0.5 * mean_t max((V - R)^2, (V_old + clip(V - V_old, -e, e) - R)^2)."""
    v_clipped = old_values + (values - old_values).clamp(-clip_range_value, clip_range_value)
    l1 = (values - returns) ** 2
    l2 = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(l1, l2), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((l2 > l1).float(), mask)}
    return loss, stats


def rloo_advantages(scores: torch.Tensor, k: int) -> torch.Tensor:
    """REINFORCE leave-one-out: A_i = s_i - mean of the other k-1 samples of the same prompt.

    `scores` is `[B]` with B = n_prompts * k, the k samples of a prompt contiguous.
    With k == 1 there is no baseline (plain REINFORCE).
    """
    if k <= 1:
        return scores
    s = scores.view(-1, k)
    baseline = (s.sum(1, keepdim=True) - s) / (k - 1)
    return (s - baseline).reshape(-1)


def sequence_pg_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Policy gradient with a sequence-level advantage `[B]`.

    Without clipping: -mean_i A_i * sum_t log pi(y_t) (REINFORCE, the gradient RLOO/WARP use).
    With `clip_range`: the PPO surrogate with A_i broadcast to every token (what TRL's RLOO does).
    """
    if clip_range is None:
        loss = -(advantages * masked_sum(logprobs, mask, dim=1)).mean()
        with torch.no_grad():
            stats = {"approx_kl": masked_mean(0.5 * (logprobs - old_logprobs) ** 2, mask)}
        return loss, stats
    return ppo_policy_loss(logprobs, old_logprobs, advantages[:, None].expand_as(logprobs), mask, clip_range)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


class FixedKLController:
    """Constant KL coefficient beta."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): beta <- beta * (1 + clip(KL/target - 1, -0.2, 0.2) * n_steps / horizon)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        super().__init__(init_kl_coef)
        self.target, self.horizon = float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        err = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + err * n_steps / self.horizon
