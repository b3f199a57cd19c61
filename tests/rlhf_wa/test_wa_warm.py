"""WARM: weight averaging of reward models vs the ensemble of predictions."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from rlkit2.rewards.bradley_terry import BTTrainConfig, evaluate_pairs, flip_labels
from rlkit2.rewards.warm import (
    PredictionEnsemble,
    WarmConfig,
    WeightAveragedRewardModel,
    member_specs,
    set_dropout,
    train_warm,
)

sys.path.insert(0, str(Path(__file__).parent))
from toy_rm import BagOfWordsRM, patch_tiny_bert, toy_pairs  # noqa: E402


def test_warm_of_identical_members_is_that_member():
    rm = BagOfWordsRM(hidden=8).eval()
    warm = WeightAveragedRewardModel.from_models([copy.deepcopy(rm) for _ in range(3)])
    x = ["good cat", "the mat good good"]
    assert torch.equal(warm(["p"] * 2, x), rm(["p"] * 2, x))
    assert warm.num_members == 3 and warm.head is warm.model.head  # attributes pass through


def test_warm_equals_ensemble_for_a_model_linear_in_its_weights():
    # BagOfWordsRM(hidden=0) is r = w . bow(x) + b: linear in (w, b), so mean of weights == mean of outputs.
    members = [BagOfWordsRM(seed=s).eval() for s in range(4)]
    for i, m in enumerate(members):
        with torch.no_grad():
            m.head.weight.normal_(generator=torch.Generator().manual_seed(i))
    x = ["good good cat", "dog ran", "a mat on the good"]
    warm = WeightAveragedRewardModel.from_models(members)(["p"] * 3, x)
    ens = PredictionEnsemble(members)(["p"] * 3, x)
    assert torch.allclose(warm, ens, atol=1e-5)
    # and it is not just one member
    assert not torch.allclose(warm, members[0](["p"] * 3, x))


def test_member_specs_cover_the_grid():
    specs = member_specs(WarmConfig(num_members=6, baklava=True))
    assert [s.lr for s in specs] == [1e-5, 4e-5, 1e-4] * 2
    assert [s.dropout for s in specs] == [0.05] * 3 + [0.1] * 3
    assert [s.init_checkpoint for s in specs] == list(range(6))
    assert len({s.data_seed for s in specs}) == 6
    assert [s.init_checkpoint for s in member_specs(WarmConfig(num_members=3))] == [0, 0, 0]


def test_set_dropout():
    rm = BagOfWordsRM()
    assert set_dropout(rm, 0.05) == 1 and rm.drop.p == 0.05


@pytest.mark.parametrize("baklava", [False, True])
def test_train_warm_on_noisy_labels(baklava):
    torch.manual_seed(0)
    train = flip_labels(toy_pairs(200, seed=0), 0.2, seed=0)
    test = toy_pairs(100, seed=1)
    cfg = WarmConfig(num_members=3, lrs=[2e-2, 5e-2, 1e-1], dropouts=[0.05, 0.1], baklava=baklava, baklava_steps=20,
                     baklava_lr=1e-2, linear_probe_steps=50, linear_probe_lr=5e-2,
                     bt=BTTrainConfig(steps=60, batch_size=16))
    res = train_warm(lambda: BagOfWordsRM(hidden=16, seed=0), train, cfg, eval_pairs=test)
    assert len(res.members) == 3 and res.warm.num_members == 3
    accs = [res.metrics[f"member{i}/eval_accuracy"] for i in range(3)]
    # the weight average is a working reward model (members share an init, so it is not destroyed by averaging)
    assert res.metrics["warm/eval_accuracy"] >= min(accs) - 0.02
    assert res.metrics["warm/eval_accuracy"] > 0.85
    assert evaluate_pairs(res.ensemble, test)["accuracy"] == pytest.approx(res.metrics["ens/eval_accuracy"])
    # members really differ (diverse runs), the shared init keeps them close
    w = [m.head.weight.detach() for m in res.members]
    assert not torch.allclose(w[0], w[1])


def test_reward_kind_warm_loads_members(tmp_path, monkeypatch):
    """`reward=warm`: member checkpoints -> WARM average / ENS / one member, as a RewardFunction."""

    from rlkit2.rewards import make_reward
    from rlkit2.rewards.warm import save_members

    tiny = patch_tiny_bert(monkeypatch)
    members = []
    for s in range(2):
        m = tiny("x")
        with torch.no_grad():
            m.head.weight.normal_(generator=torch.Generator().manual_seed(s))
            m.trunk.encoder.layer[0].output.dense.weight.add_(0.1 * s)
        members.append(m.eval())
    save_members(members, tmp_path)
    docs, resp = ["alice owns a cat .", "bob likes tea ."], ["alice owns a cat .", "bob likes jazz ."]
    warm = make_reward({"kind": "warm", "directory": str(tmp_path)})(docs, resp)
    expected = WeightAveragedRewardModel.from_models(members)(docs, resp)
    assert torch.allclose(warm, expected.detach(), atol=1e-5)
    ens = make_reward({"kind": "warm", "directory": str(tmp_path), "combine": "ensemble"})(docs, resp)
    assert torch.allclose(ens, PredictionEnsemble(members)(docs, resp).detach(), atol=1e-5)
    one = make_reward({"kind": "warm", "checkpoints": [str(p) for p in sorted(tmp_path.glob("*.pt"))],
                       "combine": "member", "member": 1})(docs, resp)
    assert torch.allclose(one, members[1](docs, resp).detach(), atol=1e-5)
    from rlkit2.core import ConfigError

    with pytest.raises(ConfigError, match="needs member checkpoints"):
        make_reward({"kind": "warm"})
    with pytest.raises(ConfigError, match="combine"):
        make_reward({"kind": "warm", "directory": str(tmp_path), "combine": "median"})
