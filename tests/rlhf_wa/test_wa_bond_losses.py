"""BOND / J-BOND loss terms on hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit2.agents.bond.losses import (
    backward_kl_loss,
    best_of_n_index,
    bond_reward,
    forward_kl_loss,
    jbond_best_anchor,
    jbond_loss,
    jbond_reward,
    jeffreys,
    quantile_estimate,
)


def test_quantile_estimate():
    r_y = torch.tensor([0.5, 2.0, -1.0])
    anchors = torch.tensor([[0.0, 1.0, 0.5, 3.0], [0.0, 1.0, 0.5, 3.0], [0.0, 1.0, 0.5, 3.0]])
    # <= counts: 0.5 beats {0, 0.5} -> 2/4 ; 2.0 beats 3 of 4 ; -1 beats none
    assert torch.allclose(quantile_estimate(r_y, anchors), torch.tensor([0.5, 0.75, 0.0]))


def test_bond_reward_is_n_minus_1_log_quantile():
    q = torch.tensor([1.0, 0.5, 0.0])
    r = bond_reward(q, n=4, min_quantile=0.125)
    assert torch.allclose(r, torch.tensor([0.0, 3 * math.log(0.5), 3 * math.log(0.125)]))
    assert torch.equal(bond_reward(q, n=1), torch.zeros(3))  # Best-of-1 is the reference itself


def test_best_of_n_index_first_on_ties():
    assert best_of_n_index(torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 0.0]])).tolist() == [1, 0]


def test_forward_kl_and_jeffreys_mix():
    logp = torch.tensor([-1.0, -3.0])
    assert forward_kl_loss(logp).item() == pytest.approx(2.0)
    f, b = torch.tensor(2.0), torch.tensor(6.0)
    assert jeffreys(f, b, 0.5).item() == pytest.approx(4.0)
    assert jeffreys(f, b, 0.0).item() == pytest.approx(2.0) and jeffreys(f, b, 1.0).item() == pytest.approx(6.0)
    with pytest.raises(ValueError):
        jeffreys(f, b, 1.5)


def test_backward_kl_surrogate_gradient_matches_reverse_kl():
    # Categorical policy over 3 outcomes, exact expectation: weight each "sample" by pi(y).
    # grad KL(pi || q), q ∝ ref * exp(r), equals E_pi[grad log pi * (log pi - log ref - r)].
    logits = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    ref = torch.log_softmax(torch.tensor([0.0, 1.0, -1.0]), 0)
    r = torch.tensor([0.0, -math.log(16), 0.0])
    logp = torch.log_softmax(logits, 0)
    coef = (logp - ref - r).detach()
    surrogate = (logp.exp().detach() * coef * logp).sum()  # exact E_pi with weights pi(y)
    (g_sur,) = torch.autograd.grad(surrogate, logits, retain_graph=True)
    logq = torch.log_softmax(ref + r, 0)
    kl = (logp.exp() * (logp - logq)).sum()
    (g_kl,) = torch.autograd.grad(kl, logits)
    assert torch.allclose(g_sur, g_kl, atol=1e-6)
    # the batch helper: coefficient detached, baseline = mean
    lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    loss, est = backward_kl_loss(lp, torch.tensor([-1.5, -1.5]), torch.tensor([0.0, -1.0]))
    assert torch.allclose(est, torch.tensor([0.5, 0.5]))
    loss.backward()
    assert torch.allclose(lp.grad, torch.zeros(2))  # equal coefficients: the baseline cancels them


def test_jbond_reward_hand_worked():
    r_pol = torch.tensor([0.0, 1.0, 2.0, 1.0, 0.5])
    a1 = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
    a2 = torch.tensor([2.0, 2.0, 1.0, 2.0, 0.5])
    # below both -> -log 16 ; between -> 0 ; above both -> 0 ; tie with the min -> 0 (not strictly below)
    expected = torch.tensor([-math.log(16), 0.0, 0.0, 0.0, 0.0])
    assert torch.allclose(jbond_reward(r_pol, a1, a2), expected)
    assert jbond_best_anchor(a1, a2).tolist() == [1, 1, 0, 1, 0]


def test_jbond_loss_terms():
    # two prompts; forward target log-probs, policy log-probs with grad
    logp_pol = torch.tensor([-2.0, -3.0], requires_grad=True)
    logp_best = torch.tensor([-4.0, -6.0], requires_grad=True)
    logp_anc = torch.tensor([-2.0, -3.0])  # policy == anchor on these samples: KL estimate 0
    r_pol, a1, a2 = torch.tensor([0.0, 5.0]), torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])
    loss, stats = jbond_loss(logp_pol, logp_anc, logp_best, r_pol, a1, a2, beta=0.5)
    # r_J = [-log16, 0]; coefficient log pi - log pi_anc - r_J = [log16, 0]; baseline = log16/2
    # backward surrogate = mean([(log16/2)(-2), (-log16/2)(-3)]) = log16/4 ; forward = 5
    l16 = math.log(16)
    assert loss.item() == pytest.approx(0.5 * 5.0 + 0.5 * (l16 / 4), rel=1e-6)
    assert stats["jbond_reward"].item() == pytest.approx(-l16 / 2)
    assert stats["forward_nll"].item() == pytest.approx(5.0)
    assert stats["win_rate_vs_anchor"].item() == pytest.approx(0.5)
    loss.backward()
    # forward term pushes up log pi(y'_best) with weight (1 - beta)/B ; the worse-than-both sample is pushed down
    assert torch.allclose(logp_best.grad, torch.tensor([-0.25, -0.25]))
    assert torch.allclose(logp_pol.grad, torch.tensor([0.5 * l16 / 2 / 2, -0.5 * l16 / 2 / 2]))
