"""Merge utilities on vectors and tiny models where the answer is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rlkit2.core import ConfigError, DataError
from rlkit2.merging import (
    apply_task_vector,
    average_state_dicts,
    cosine_similarity,
    ema_update,
    liti,
    slerp,
    slerp_merge,
    slerp_task_vectors,
    state_dict_norm,
    task_vector,
)


def test_average_of_identical_models_is_that_model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(7, 1))
    sd = net.state_dict()
    avg = average_state_dicts([sd, sd, sd])
    for k in sd:
        assert torch.equal(avg[k], sd[k])


def test_average_of_linear_models_averages_outputs():
    # For a linear model f(x) = Wx + b, f_{avg theta}(x) = mean_i f_{theta_i}(x) exactly.
    torch.manual_seed(1)
    models = [nn.Linear(4, 2) for _ in range(3)]
    avg = nn.Linear(4, 2)
    avg.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    x = torch.randn(10, 4)
    expected = torch.stack([m(x) for m in models]).mean(0)
    assert torch.allclose(avg(x), expected, atol=1e-6)
    # weighted: w = (1, 0, 0) returns model 0
    w0 = average_state_dicts([m.state_dict() for m in models], weights=[1.0, 0.0, 0.0])
    assert torch.allclose(w0["weight"], models[0].weight)


def test_average_rejects_mismatched_architectures():
    with pytest.raises(DataError, match="different keys"):
        average_state_dicts([nn.Linear(2, 2).state_dict(), nn.Sequential(nn.Linear(2, 2)).state_dict()])
    with pytest.raises(DataError, match="shape"):
        average_state_dicts([nn.Linear(2, 2).state_dict(), nn.Linear(3, 2).state_dict()])
    with pytest.raises(ConfigError):
        average_state_dicts([nn.Linear(2, 2).state_dict()], weights=[1.0, 2.0])


def test_integer_buffers_copied_and_checked():
    a = {"w": torch.ones(2), "ids": torch.arange(3)}
    b = {"w": torch.zeros(2), "ids": torch.arange(3)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["ids"], torch.arange(3)) and torch.allclose(out["w"], torch.full((2,), 0.5))
    with pytest.raises(DataError, match="non-float buffer 'ids'"):
        average_state_dicts([a, {"w": torch.zeros(2), "ids": torch.arange(3) + 1}])


def test_slerp_of_orthogonal_unit_vectors():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = slerp(e1, e2, 0.5)
    assert torch.allclose(mid, torch.tensor([1.0, 1.0]) / math.sqrt(2), atol=1e-6)
    assert mid.norm().item() == pytest.approx(1.0, abs=1e-6)  # LERP would give 1/sqrt(2)
    # endpoints and a generic t: stays on the unit circle at angle t * pi/2
    assert torch.allclose(slerp(e1, e2, 0.0), e1) and torch.allclose(slerp(e1, e2, 1.0), e2)
    t = 0.3
    assert torch.allclose(slerp(e1, e2, t), torch.tensor([math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)]),
                          atol=1e-6)


def test_slerp_scales_and_degenerate_cases():
    # orthogonal vectors of norm 2 and 2: midpoint has norm 2 (the common norm is preserved)
    a, b = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0])
    assert slerp(a, b, 0.5).norm().item() == pytest.approx(2.0, abs=1e-6)
    # parallel vectors: falls back to LERP (no division by sin 0)
    p = torch.tensor([1.0, 1.0])
    assert torch.allclose(slerp(p, 3 * p, 0.5), 2 * p)
    # a zero task vector: LERP
    assert torch.allclose(slerp(torch.zeros(2), p, 0.5), 0.5 * p)
    with pytest.raises(ConfigError):
        slerp(p, p, 1.5)


def test_layerwise_slerp_merge_uses_one_angle_per_tensor():
    init = {"a": torch.zeros(2), "b": torch.ones(3), "step": torch.tensor(4)}
    th1 = {"a": torch.tensor([1.0, 0.0]), "b": torch.ones(3) + torch.tensor([1.0, 0.0, 0.0]), "step": torch.tensor(4)}
    th2 = {"a": torch.tensor([0.0, 1.0]), "b": torch.ones(3) + torch.tensor([2.0, 0.0, 0.0]), "step": torch.tensor(4)}
    merged = slerp_merge(init, [th1, th2])
    # layer a: orthogonal unit task vectors -> (1,1)/sqrt2 ; layer b: parallel deltas -> their mean 1.5
    assert torch.allclose(merged["a"], torch.tensor([1.0, 1.0]) / math.sqrt(2), atol=1e-6)
    assert torch.allclose(merged["b"], torch.tensor([2.5, 1.0, 1.0]), atol=1e-6)
    assert int(merged["step"]) == 4


def test_slerp_three_orthogonal_vectors_fold():
    d = [{"v": torch.eye(3)[i]} for i in range(3)]
    out = slerp_task_vectors(d)["v"]
    # fold: slerp(e1, e2, 1/2) = (1,1,0)/sqrt2, then 1/3 of the 90 degree arc towards e3 (30 degrees)
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    assert torch.allclose(out, torch.tensor([c / math.sqrt(2), c / math.sqrt(2), s]), atol=1e-6)
    assert out.norm().item() == pytest.approx(1.0, abs=1e-6)


def test_task_vector_roundtrip_and_norms():
    torch.manual_seed(2)
    init, th = nn.Linear(3, 3).state_dict(), nn.Linear(3, 3).state_dict()
    delta = task_vector(th, init)
    back = apply_task_vector(init, delta)
    for k in th:
        assert torch.allclose(back[k], th[k], atol=1e-6)
    flat = torch.cat([(th[k] - init[k]).flatten() for k in th])
    assert state_dict_norm(delta) == pytest.approx(flat.norm().item(), rel=1e-5)
    assert cosine_similarity(delta, delta) == pytest.approx(1.0)


def test_liti_endpoints_and_midpoint():
    init = {"w": torch.tensor([0.0, 2.0])}
    merged = {"w": torch.tensor([1.0, 4.0])}
    assert torch.equal(liti(init, merged, 0.0)["w"], init["w"])
    assert torch.equal(liti(init, merged, 1.0)["w"], merged["w"])
    assert torch.allclose(liti(init, merged)["w"], torch.tensor([0.3, 2.6]))  # eta = 0.3 default
    with pytest.raises(ConfigError):
        liti(init, merged, -0.1)


def test_ema_update_rate():
    anchor, model = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        anchor.weight.fill_(0.0)
        model.weight.fill_(1.0)
    for _ in range(10):
        ema_update(anchor, model, 0.01)
    assert anchor.weight.item() == pytest.approx(1 - 0.99**10, rel=1e-5)
    ema_update(anchor, model, 1.0)
    assert anchor.weight.item() == pytest.approx(1.0)
