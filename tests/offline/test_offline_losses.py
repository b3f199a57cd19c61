"""Offline agents' losses on hand-made batches."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit2.agents.iql import losses as iql
from rlkit2.agents.qsarsa import losses as qs
from rlkit2.agents.td3_bc import losses as tb


def test_td3_bc_actor_loss_by_hand():
    q_pi = torch.tensor([2.0, -4.0])  # mean|Q| = 3 -> lambda = 2.5 / 3
    pi = torch.tensor([[0.5], [0.0]])
    a = torch.tensor([[0.0], [1.0]])  # mse = (0.25 + 1) / 2
    expected = -(2.5 / 3.0) * (-1.0) + 0.625
    assert tb.td3_bc_actor_loss(q_pi, pi, a, alpha=2.5).item() == pytest.approx(expected)


def test_td3_bc_lambda_is_detached():
    q_pi = torch.tensor([1.0, 3.0], requires_grad=True)
    loss = tb.td3_bc_actor_loss(q_pi, torch.zeros(2, 1), torch.zeros(2, 1), alpha=2.0)
    loss.backward()
    # d/dq of -lambda * mean(q) with lambda = 2 / 2 held fixed: -1/2 each.
    assert torch.allclose(q_pi.grad, torch.tensor([-0.5, -0.5]))


def test_sarsa_target_uses_dataset_next_action_value_and_cuts_terminals():
    r = torch.tensor([1.0, 1.0])
    d = torch.tensor([0.0, 1.0])
    next_q = torch.tensor([[10.0, 10.0]])
    assert torch.allclose(qs.sarsa_target(r, d, next_q, 0.9), torch.tensor([[10.0, 1.0]]))


def test_qsarsa_losses_with_zero_weights_equal_td3_bc():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 8, generator=g)
    y = torch.randn(8, generator=g)
    q_pi = torch.randn(2, 8, generator=g)
    qs_pi = torch.randn(8, generator=g)
    assert torch.equal(qs.qsarsa_critic_loss(q, y, q_pi, qs_pi, eta=0.0), tb.critic_loss(q, y))
    pi, a = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    assert torch.equal(qs.qsarsa_actor_loss(q_pi[0], qs_pi, pi, a, 2.5, kappa=0.0),
                       tb.td3_bc_actor_loss(q_pi[0], pi, a, 2.5))
    next_min = torch.randn(8, generator=g)
    assert torch.equal(qs.critic_target(y, torch.zeros(8), next_min, qs_pi, 0.99, beta=0.0),
                       tb.bellman_target(y, torch.zeros(8), next_min, 0.99))


def test_qsarsa_critic_penalty_and_blend_by_hand():
    q_pi = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    qs_pi = torch.tensor([1.0, 1.0])
    assert qs.sarsa_critic_penalty(q_pi, qs_pi).item() == pytest.approx((0 + 1 + 4 + 1) / 4)
    loss = qs.qsarsa_critic_loss(q_pi, torch.tensor([1.0, 2.0]), q_pi, qs_pi, eta=0.5)
    assert loss.item() == pytest.approx((0 + 0) / 2 + (4 + 0) / 2 + 0.5 * 1.5)
    assert torch.allclose(qs.blended_bootstrap(torch.tensor([4.0]), torch.tensor([0.0]), 0.25), torch.tensor([3.0]))


def test_qsarsa_actor_uses_q_sarsa_as_second_critic():
    q_pi, qs_pi = torch.tensor([4.0]), torch.tensor([0.0])
    zero = torch.zeros(1, 1)
    # bracket = 0.5 * 4 + 0.5 * 0 = 2, lambda = 1 / 2 -> loss -1
    assert qs.qsarsa_actor_loss(q_pi, qs_pi, zero, zero, alpha=1.0, kappa=0.5).item() == pytest.approx(-1.0)


def test_expectile_loss_by_hand():
    diff = torch.tensor([2.0, -2.0])
    assert iql.expectile_loss(diff, 0.7).item() == pytest.approx((0.7 * 4 + 0.3 * 4) / 2)
    assert iql.expectile_loss(diff, 0.9).item() == pytest.approx((0.9 * 4 + 0.1 * 4) / 2)


def test_awr_weights_are_clipped_and_detached():
    adv = torch.tensor([0.0, 10.0], requires_grad=True)
    w = iql.awr_weights(adv, beta=3.0, max_weight=100.0)
    assert w[0].item() == pytest.approx(1.0) and w[1].item() == pytest.approx(100.0)
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    iql.awr_actor_loss(logp, adv, 3.0, 100.0).backward()
    assert adv.grad is None and torch.allclose(logp.grad, torch.tensor([-0.5, -50.0]))


def test_iql_reward_scale():
    assert iql.reward_scale([100.0, 600.0, 350.0]) == pytest.approx(1000.0 / 500.0)
    assert math.isfinite(iql.reward_scale([5.0, 5.0]))


def test_cql_penalty_by_hand():
    from rlkit2.agents.cql import losses as cql

    q_data = torch.tensor([[1.0, 2.0]])  # one member, B = 2
    q_sampled = torch.tensor([[[0.0, 0.0], [2.0, 2.0]]])  # N = 2 sampled actions each
    # row 0: logsumexp(0, 0) - 1 = log 2 - 1; row 1: logsumexp(2, 2) - 2 = log 2
    want = ((math.log(2) - 1) + math.log(2)) / 2
    assert cql.conservative_penalty(q_data, q_sampled).item() == pytest.approx(want)
    # temperature t: t * logsumexp(q / t); with t = 2 and equal values: q + 2 log 2
    assert cql.conservative_penalty(q_data, q_sampled, 2.0).item() == pytest.approx(
        ((2 * math.log(2) - 1) + (2 + 2 * math.log(2) - 2)) / 2)


def test_cql_importance_weights_subtract_each_sampling_density():
    from rlkit2.agents.cql import losses as cql

    qu, qp, qn = torch.zeros(1, 1, 1), torch.ones(1, 1, 1), torch.full((1, 1, 1), 2.0)
    lp, ln = torch.tensor([[0.5]]), torch.tensor([[-1.0]])
    out = cql.importance_weighted(qu, qp, lp, qn, ln, act_dim=3, max_action=1.0)
    # uniform on [-1, 1]^3 has log-density -3 log 2
    torch.testing.assert_close(out, torch.tensor([[[3 * math.log(2), 0.5, 3.0]]]))


def test_cql_lagrange_raises_alpha_prime_while_the_gap_exceeds_its_target():
    from rlkit2.agents.cql import losses as cql

    log_ap = torch.zeros((), requires_grad=True)
    cql.lagrange_loss(log_ap, torch.tensor([15.0]), 10.0).backward()
    assert log_ap.grad is not None and log_ap.grad.item() < 0  # gradient descent increases log alpha'
