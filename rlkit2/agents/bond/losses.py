"""BOND / J-BOND losses (Sessa et al., 2024) as pure functions of sequence-level tensors.

Notation: per-sequence log-probabilities are sums over response tokens, shape [B]. r(.) is the reward.

Best-of-N distribution of a reference (or anchor) policy, ignoring ties:
    pi_BoN(y) = N * pi_ref(y) * p<=(y)^(N-1),     p<=(y) = P_{y'~pi_ref}[ r(y') <= r(y) ].
Hence log pi_BoN(y) = log pi_ref(y) + (N - 1) log p<=(y) + log N, and
* backward KL  KL(pi || pi_BoN) = E_pi[ log pi - log pi_ref ] - E_pi[ (N-1) log p<=(y) ] - log N:
  an RL problem with reward r_BOND(y) = (N-1) log p<=(y) and a KL(pi || pi_ref) penalty of weight one;
  its gradient is E_pi[ grad log pi(y) * (log pi(y) - log pi_ref(y) - r_BOND(y)) ] (REINFORCE with a baseline);
* forward KL   KL(pi_BoN || pi) = -E_{y~pi_BoN}[ log pi(y) ] + const: supervised learning on Best-of-N samples;
* Jeffreys     J_beta = (1 - beta) KL(pi_BoN || pi) + beta KL(pi || pi_BoN), beta = 0.5.
p<=(y) is estimated from k samples of the reference/anchor: p^(y) = (1/k) sum_i 1{ r(y'_i) <= r(y) }.

J-BOND: one policy sample y, two anchor samples y'_1, y'_2 (n = 2, Best-of-2 of a moving EMA anchor):
* backward term: reward r_J(y) = -log 16 if r(y) < min(r(y'_1), r(y'_2)) else 0, with KL(pi || pi_anchor);
* forward term: -log pi(y'_best), the better of the two anchor samples.
"""

from __future__ import annotations

import math

import torch

JBOND_PENALTY = math.log(16.0)


# --------------------------------------------------------------------------- quantile reward (BOND)


def quantile_estimate(r_y: torch.Tensor, r_anchor: torch.Tensor) -> torch.Tensor:
    """p^<=(y) = mean_i 1{r(y'_i) <= r(y)};  r_y [B], r_anchor [B, k] (k anchor samples of the same prompt)."""
    if r_anchor.dim() != 2 or r_anchor.shape[0] != r_y.shape[0]:
        raise ValueError(f"r_anchor must be [B, k] with B = {r_y.shape[0]}, got {tuple(r_anchor.shape)}")
    return (r_anchor <= r_y[:, None]).float().mean(1)


def bond_reward(quantile: torch.Tensor, n: int, min_quantile: float | None = None) -> torch.Tensor:
    """r_BOND = (N - 1) * log p<=(y).

    p^ = 0 (the sample is worse than every anchor sample) would give -inf. Reconstruction: floor the estimate at
    `min_quantile` (None: 1e-6; a natural choice is 1 / (2k), half a sample) -- J-BOND's fixed -log 16
    plays the same role for k = 2.
    """
    floor = 1e-6 if min_quantile is None else min_quantile
    return (n - 1) * torch.log(quantile.clamp_min(floor))


def best_of_n_index(r_samples: torch.Tensor) -> torch.Tensor:
    """Index of the highest-reward sample in each row of r_samples [B, N] (first one on ties)."""
    return r_samples.argmax(dim=1)


# --------------------------------------------------------------------------- KL pieces


def forward_kl_loss(logp_bon: torch.Tensor) -> torch.Tensor:
    """KL(pi_BoN || pi) up to a constant: -mean log pi(y_BoN), y_BoN a (Best-of-N) target sample [B]."""
    return -logp_bon.mean()


def backward_kl_loss(logp: torch.Tensor, logp_ref: torch.Tensor, reward: torch.Tensor,
                     baseline: torch.Tensor | float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Surrogate whose gradient is that of KL(pi || pi_ref * exp(reward)) for samples y ~ pi.

    grad = E[ grad log pi(y) * (log pi(y) - log pi_ref(y) - reward(y) - b) ]; the coefficient is detached.
    Baseline b: the batch mean of the coefficient by default (a leave-nothing-out REINFORCE baseline, unbiased
    in expectation for large B; reconstruction). Returns (surrogate loss, per-sample estimate of the divergence
    log pi - log pi_ref - reward, whose mean is KL(pi || pi_target) up to log N).
    """
    est = (logp - logp_ref - reward).detach()
    b = est.mean() if baseline is None else baseline
    return ((est - b) * logp).mean(), est


def jeffreys(forward: torch.Tensor, backward: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """J_beta = (1 - beta) * forward KL + beta * backward KL (beta = 0.5 in BOND; 0 = forward only, 1 = backward)."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"Jeffreys beta must lie in [0, 1], got {beta}")
    return (1.0 - beta) * forward + beta * backward


# --------------------------------------------------------------------------- J-BOND


def jbond_reward(r_policy: torch.Tensor, r_anchor1: torch.Tensor, r_anchor2: torch.Tensor,
                 penalty: float = JBOND_PENALTY) -> torch.Tensor:
    """-log 16 where the policy sample scores strictly below both anchor samples, 0 otherwise (ties: 0)."""
    worse = r_policy < torch.minimum(r_anchor1, r_anchor2)
    return -penalty * worse.to(torch.float32)


def jbond_best_anchor(r_anchor1: torch.Tensor, r_anchor2: torch.Tensor) -> torch.Tensor:
    """0 where the first anchor sample is at least as good as the second, else 1 (the forward-KL target)."""
    return (r_anchor2 > r_anchor1).long()


def jbond_loss(logp_policy: torch.Tensor, logp_anchor_at_policy: torch.Tensor, logp_best_anchor: torch.Tensor,
               r_policy: torch.Tensor, r_anchor1: torch.Tensor, r_anchor2: torch.Tensor, beta: float = 0.5,
               logp_ref_at_policy: torch.Tensor | None = None, ref_kl_coef: float = 0.0,
               baseline: torch.Tensor | float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The J-BOND objective for one policy sample y and two anchor samples per prompt.

    logp_policy [B]: log pi(y) (with grad); logp_anchor_at_policy [B]: log pi_anchor(y) (no grad);
    logp_best_anchor [B]: log pi(y'_best) (with grad). Optional extra KL(pi || pi_ref) term with weight
    `ref_kl_coef` (J-BOND's gamma; 0 by default here) using log pi_ref(y).
    Loss = (1 - beta) * [-log pi(y'_best)] + beta * backward-KL surrogate(reward r_J, anchor) [+ gamma * KL_ref].
    """
    r_j = jbond_reward(r_policy, r_anchor1, r_anchor2)
    fwd = forward_kl_loss(logp_best_anchor)
    bwd, est = backward_kl_loss(logp_policy, logp_anchor_at_policy, r_j, baseline)
    loss = jeffreys(fwd, bwd, beta)
    stats = {"jbond_reward": r_j.mean(), "forward_nll": fwd.detach(), "backward_kl_est": est.mean(),
             "kl_to_anchor": (logp_policy - logp_anchor_at_policy).detach().mean(),
             "win_rate_vs_anchor": (r_policy > torch.maximum(r_anchor1, r_anchor2)).float().mean()}
    if logp_ref_at_policy is not None and ref_kl_coef:
        ref_est = (logp_policy - logp_ref_at_policy).detach()
        loss = loss + ref_kl_coef * ((ref_est - ref_est.mean()) * logp_policy).mean()
        stats["kl_to_ref"] = ref_est.mean()
    return loss, stats
