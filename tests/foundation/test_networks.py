from __future__ import annotations

import torch

from rlkit2.networks import EnsembleMLP, QEnsemble, TanhGaussianPolicy, mlp, soft_update


def test_ensemble_members_match_independent_mlps():
    torch.manual_seed(0)
    ens = EnsembleMLP(3, 4, 2, hidden=[8, 8])
    x = torch.randn(5, 4)
    out = ens(x)
    assert out.shape == (3, 5, 2)
    for i in range(3):  # member i is an ordinary MLP with its slice of the stacked weights
        net = mlp(4, 2, [8, 8])
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        for lin, layer in zip(linears, [*ens.layers, ens.out], strict=True):
            lin.weight.data = layer.weight[i].T.clone()
            lin.bias.data = layer.bias[i, 0].clone()
        assert torch.allclose(net(x), out[i], atol=1e-6)


def test_q_ensemble_members_differ_and_get_gradients():
    q = QEnsemble(3, 2, n=2, hidden=[16])
    v = q(torch.randn(7, 3), torch.randn(7, 2))
    assert v.shape == (2, 7) and not torch.allclose(v[0], v[1])
    v.sum().backward()
    assert all(p.grad is not None for p in q.parameters())


def test_tanh_gaussian_log_prob_matches_sampled():
    torch.manual_seed(0)
    pi = TanhGaussianPolicy(4, 3, hidden=[16])
    obs = torch.randn(10, 4)
    a, logp, mode = pi(obs)
    assert a.abs().max() <= 1 and mode.shape == a.shape
    assert torch.allclose(pi.log_prob(obs, a), logp, atol=1e-3)


def test_soft_update_moves_target_by_tau():
    src, tgt = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = tgt.weight.detach().clone()
    soft_update(tgt, src, 0.25)
    assert torch.allclose(tgt.weight, 0.75 * before + 0.25 * src.weight)
