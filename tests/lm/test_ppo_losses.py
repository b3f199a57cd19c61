"""PPO / GAE / KL / RLOO losses on small hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit2.agents.ppo_lm import losses as L


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_gae_hand_case_full_mask():
    # gamma=1, lam=0.5: deltas 0.1, 0.1, 0.3 -> A2=0.3, A1=0.1+0.5*0.3, A0=0.1+0.5*A1
    adv, ret = L.gae(t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]]), t([[1, 1, 1]]), gamma=1.0, lam=0.5)
    assert torch.allclose(adv, t([[0.225, 0.25, 0.3]]))
    assert torch.allclose(ret, t([[0.725, 0.85, 1.0]]))


def test_gae_stops_at_padding_and_ignores_pad_values():
    adv, ret = L.gae(t([[0, 1, 0]]), t([[0.5, 0.6, 9.0]]), t([[1, 1, 0]]), gamma=1.0, lam=0.5)
    assert torch.allclose(adv, t([[0.3, 0.4, 0.0]]))
    assert torch.allclose(ret, t([[0.8, 1.0, 0.0]]))


def test_gae_discount():
    # gamma=0.9, lam=1: A_t = discounted return - V_t
    adv, _ = L.gae(t([[1, 1]]), t([[0.0, 0.0]]), t([[1, 1]]), gamma=0.9, lam=1.0)
    assert torch.allclose(adv, t([[1.9, 1.0]]))


def test_ppo_policy_loss_clips_both_sides():
    lp, old = torch.log(t([[0.6, 0.3]])), torch.log(t([[0.5, 0.5]]))  # ratios 1.2, 0.6
    loss, stats = L.ppo_policy_loss(lp, old, t([[1.0, -1.0]]), t([[1, 1]]), clip_range=0.1)
    # token 1: max(-1.2, -1.1) = -1.1 ; token 2: max(0.6, 0.9) = 0.9
    assert loss.item() == pytest.approx(-0.1, abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(1.0)


def test_ppo_policy_loss_unclipped_gradient_is_advantage():
    lp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = L.ppo_policy_loss(lp, torch.zeros(1, 2), t([[2.0, -1.0]]), t([[1, 1]]), clip_range=0.2)
    loss.backward()
    assert torch.allclose(lp.grad, t([[-1.0, 0.5]]))  # -A / n_tokens at ratio 1


def test_clipped_value_loss():
    loss, _ = L.clipped_value_loss(t([[1.0, 0.0]]), t([[0.5, 0.5]]), t([[0.0, 1.0]]), t([[1, 1]]), 0.2)
    assert loss.item() == pytest.approx(0.5)
    # clipped branch larger: V=0.6, V_old=0.5, R=1, eps=0.05 -> 0.5 * (0.55 - 1)^2
    loss, stats = L.clipped_value_loss(t([[0.6]]), t([[0.5]]), t([[1.0]]), t([[1]]), 0.05)
    assert loss.item() == pytest.approx(0.5 * 0.45**2)
    assert stats["vf_clipfrac"].item() == 1.0


def test_kl_penalized_rewards_puts_score_on_last_token():
    rewards, kl = L.kl_penalized_rewards(
        t([2.0]), t([[-1, -2, -3]]), t([[-1.5, -2, -2]]), t([[1, 1, 0]]), kl_coef=0.1
    )
    assert torch.allclose(kl, t([[0.5, 0.0, 0.0]]))
    assert torch.allclose(rewards, t([[-0.05, 2.0, 0.0]]))


def test_kl_estimators():
    lp, ref = t([0.0]), t([-0.5])
    assert L.per_token_kl(lp, ref, "k1").item() == pytest.approx(0.5)
    assert L.per_token_kl(lp, ref, "k2").item() == pytest.approx(0.125)
    assert L.per_token_kl(lp, ref, "k3").item() == pytest.approx(math.exp(-0.5) - 1 + 0.5)
    with pytest.raises(ValueError, match="k4"):
        L.per_token_kl(lp, ref, "k4")


def test_k1_and_k3_are_unbiased_kl_estimates():
    torch.manual_seed(0)
    p = torch.softmax(t([1.0, 0.0, -1.0]), 0)
    q = torch.softmax(t([0.0, 0.5, 0.0]), 0)
    true_kl = (p * (p / q).log()).sum()
    x = torch.multinomial(p, 200_000, replacement=True)
    for est in ("k1", "k3"):
        assert L.per_token_kl(p.log()[x], q.log()[x], est).mean().item() == pytest.approx(true_kl.item(), abs=5e-3)


def test_rloo_advantages():
    adv = L.rloo_advantages(t([1, 2, 3, 4, 4, 4]), k=3)
    assert torch.allclose(adv, t([-1.5, 0.0, 1.5, 0.0, 0.0, 0.0]))
    assert torch.allclose(L.rloo_advantages(t([1, 2]), k=1), t([1, 2]))


def test_sequence_pg_loss():
    loss, _ = L.sequence_pg_loss(t([[-1, -2], [-3, -4]]), t([[-1, -2], [-3, -4]]), t([1.0, -2.0]), t([[1, 1], [1, 0]]))
    assert loss.item() == pytest.approx(-1.5)


def test_masked_whiten():
    out = L.masked_whiten(t([1, 2, 3, 100]), t([1, 1, 1, 0]))
    assert torch.allclose(out, t([-1, 0, 1, 0]), atol=1e-6)
    kept = L.masked_whiten(t([1, 2, 3, 100]), t([1, 1, 1, 0]), shift_mean=False)
    assert torch.allclose(kept, t([1, 2, 3, 0]), atol=1e-6)


def test_adaptive_kl_controller():
    c = L.AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    c.update(12.0, n_steps=100)  # error clipped at +0.2
    assert c.value == pytest.approx(0.1 * 1.002)
    c.update(3.0, n_steps=100)  # error -0.5 clipped at -0.2
    assert c.value == pytest.approx(0.1 * 1.002 * 0.998)
