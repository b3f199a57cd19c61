"""Bradley-Terry loss, accuracy, pair I/O and training on a toy preference."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from rlkit2.core import DataError
from rlkit2.rewards.bradley_terry import (
    BTTrainConfig,
    PreferencePair,
    bradley_terry_loss,
    evaluate_pairs,
    flip_labels,
    load_preference_pairs,
    pairwise_accuracy,
    save_preference_pairs,
    train_bradley_terry,
)

sys.path.insert(0, str(Path(__file__).parent))
from toy_rm import BagOfWordsRM, toy_pairs  # noqa: E402


def test_bt_loss_hand_worked():
    # equal rewards: -log(1/2) = log 2 ; margin 1: log(1 + e^-1) ; margin -1: log(1 + e)
    z = torch.zeros(3)
    assert bradley_terry_loss(z, z).item() == pytest.approx(math.log(2))
    assert bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0])).item() == pytest.approx(math.log1p(math.e**-1))
    assert bradley_terry_loss(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(math.log1p(math.e))
    # only the difference matters
    assert bradley_terry_loss(torch.tensor([5.0]), torch.tensor([4.0])).item() == pytest.approx(math.log1p(math.e**-1))
    # label smoothing eps=0.5 on margin d: -(0.5 logsig(d) + 0.5 logsig(-d)), symmetric in d
    a = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([0.0]), label_smoothing=0.5)
    b = bradley_terry_loss(torch.tensor([0.0]), torch.tensor([2.0]), label_smoothing=0.5)
    assert a.item() == pytest.approx(b.item())
    # gradient wrt the margin: -(1 - sigmoid(d)) = -1/2 at d = 0
    d = torch.zeros(1, requires_grad=True)
    bradley_terry_loss(d, torch.zeros(1)).backward()
    assert d.grad.item() == pytest.approx(-0.5)


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0, 1.0]), torch.tensor([0.0, 1.0, 2.0, 0.5])).item() == \
        pytest.approx((1 + 0 + 0.5 + 1) / 4)


def test_jsonl_roundtrip_and_errors(tmp_path):
    pairs = [PreferencePair("x", "a b", "c"), PreferencePair("y", "d", "e f")]
    p = save_preference_pairs(pairs, tmp_path / "prefs.jsonl")
    assert load_preference_pairs(p) == pairs
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "chosen": "a"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl: row 0 lacks key\(s\) \['rejected'\]"):
        load_preference_pairs(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "x", "chosen": "a", "rejected": "b"}\n{oops\n')
    with pytest.raises(DataError, match="broken.jsonl:2: not valid JSON"):
        load_preference_pairs(broken)
    with pytest.raises(DataError, match="does not exist"):
        load_preference_pairs(tmp_path / "missing.jsonl")


def test_datasets_dataset_and_custom_keys(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"q": ["x", "y"], "good": ["a", "b"], "bad": ["c", "d"]})
    pairs = load_preference_pairs(ds, prompt_key="q", chosen_key="good", rejected_key="bad")
    assert pairs == [PreferencePair("x", "a", "c"), PreferencePair("y", "b", "d")]
    ds.save_to_disk(str(tmp_path / "ds"))
    assert load_preference_pairs(tmp_path / "ds", prompt_key="q", chosen_key="good", rejected_key="bad") == pairs


def test_flip_labels_exact_fraction():
    pairs = toy_pairs(40)
    noisy = flip_labels(pairs, 0.25, seed=3)
    flipped = sum(n.chosen == p.rejected and n.rejected == p.chosen for n, p in zip(noisy, pairs, strict=True))
    assert flipped == 10
    assert flip_labels(pairs, 0.0) == pairs


def test_training_learns_the_preference():
    torch.manual_seed(0)
    train, test = toy_pairs(200, seed=0), toy_pairs(100, seed=1)
    rm = BagOfWordsRM()
    before = evaluate_pairs(rm, test)["accuracy"]
    out = train_bradley_terry(rm, train, BTTrainConfig(steps=150, batch_size=16, lr=5e-2, data_seed=0))
    after = evaluate_pairs(rm, test)
    assert after["accuracy"] > 0.95 and after["accuracy"] > before
    assert out["train/bt_loss"] < math.log(2)


def test_synthetic_pairs_are_labelled_by_the_checker():
    from rlkit2.lm import synthetic as S
    from rlkit2.rewards.bradley_terry import synthetic_preference_pairs

    def prec(d, s):
        c = S.check(d, s)
        return c.supported / c.n_statements if c.n_statements else 0.0

    clean = synthetic_preference_pairs(60, seed=4)
    assert len(clean) == 60 and all(prec(p.prompt, p.chosen) > prec(p.prompt, p.rejected) for p in clean)
    noisy = synthetic_preference_pairs(60, seed=4, label_noise=0.25)
    wrong = sum(prec(p.prompt, p.chosen) < prec(p.prompt, p.rejected) for p in noisy)
    assert wrong == 15  # exactly a quarter flipped
    # policy samples: two per document, contiguous
    with_policy = synthetic_preference_pairs(20, seed=5, policy_fraction=1.0,
                                             policy_samples=lambda docs, seed: [x for d in docs for x in (d, "")])
    assert all(p.rejected == "" and p.chosen == p.prompt for p in with_policy)  # the copy beats the empty summary
