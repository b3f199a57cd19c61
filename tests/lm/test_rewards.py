"""Rewards: NLI entailment on a tiny classifier (label lookup, chunking, max over chunks), reward model,
user callables, shaping, config errors."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from rlkit2.core import ConfigError
from rlkit2.rewards import make_reward
from rlkit2.rewards.entailment import EntailmentReward, chunk_premise, minilm_path, split_sentences


@pytest.fixture(scope="module")
def bert_tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path())  # the packaged MiniLM's WordPiece tokenizer, offline


@pytest.fixture(scope="module")
def tiny_nli(bert_tok):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=bert_tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=3, id2label={0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"},
                     label2id={"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2})
    return BertForSequenceClassification(cfg).eval()


DOC = " ".join(f"person{i} lives in city{i} and likes the colour number {i}." for i in range(12))


def test_label_lookup_and_probabilities(tiny_nli, bert_tok):
    r = EntailmentReward(tiny_nli, bert_tok, "entailment", max_length=512)
    assert r.label_id == 2
    out = r(["alice likes tea.", "bob owns a cat."], ["alice likes tea.", "bob owns a dog."])
    assert out.shape == (2,) and torch.all((out > 0) & (out < 1))
    with pytest.raises(ConfigError, match="not among the model's labels"):
        EntailmentReward(tiny_nli, bert_tok, "paraphrase")


def test_chunks_fit_the_context_and_keep_every_sentence(bert_tok):
    chunks = chunk_premise(bert_tok, DOC, "person3 likes colour 3.", max_length=48)
    hyp_len = len(bert_tok("person3 likes colour 3.", add_special_tokens=False).input_ids)
    assert len(chunks) > 1
    for c in chunks:
        n = len(bert_tok(c, "person3 likes colour 3.").input_ids)
        assert n <= 48, (n, c)
    assert " ".join(chunks).replace(" ", "") == bert_tok.decode(bert_tok(DOC, add_special_tokens=False)
                                                                .input_ids).replace(" ", "")
    assert hyp_len > 0
    with pytest.raises(ConfigError, match="max_length"):
        chunk_premise(bert_tok, DOC, "a " * 40, max_length=40)


def test_long_document_reward_is_max_over_chunks(tiny_nli, bert_tok):
    hyp = "person3 likes colour 3."
    r = EntailmentReward(tiny_nli, bert_tok, "entailment", max_length=48)
    chunks = chunk_premise(bert_tok, DOC, hyp, 48)
    per_chunk = r.entailment_probs(chunks, [hyp] * len(chunks))
    assert r([DOC], [hyp]).item() == pytest.approx(per_chunk.max().item(), abs=1e-6)
    # sentence_min: every summary sentence must be supported somewhere -> min over sentences of max over chunks
    two = hyp + " person7 lives in city7."
    rs = EntailmentReward(tiny_nli, bert_tok, "entailment", max_length=48, aggregate="sentence_min")
    best = [r.entailment_probs(chunk_premise(bert_tok, DOC, s, 48), [s] * len(chunk_premise(bert_tok, DOC, s, 48)))
            .max().item() for s in split_sentences(two)]
    assert rs([DOC], [two]).item() == pytest.approx(min(best), abs=1e-6)
    logr = EntailmentReward(tiny_nli, bert_tok, "entailment", max_length=48, log=True)
    assert logr([DOC], [hyp]).item() == pytest.approx(per_chunk.max().log().item(), abs=1e-5)


def test_entailment_reward_from_config_dir(tiny_nli, bert_tok, tmp_path):
    tiny_nli.save_pretrained(tmp_path / "nli")
    bert_tok.save_pretrained(tmp_path / "nli")
    fn = make_reward({"kind": "entailment", "model": str(tmp_path / "nli"), "max_length": 64})
    direct = EntailmentReward(tiny_nli, bert_tok, max_length=64)
    assert torch.allclose(fn(["alice likes tea."], ["alice likes tea."]), direct(["alice likes tea."],
                                                                                  ["alice likes tea."]), atol=1e-6)


def test_user_callable_plugs_in_with_shaping():
    mod = types.ModuleType("rlkit2_test_user_reward")
    mod.count_words = lambda docs, resps: [float(len(r.split())) for r in resps]
    sys.modules[mod.__name__] = mod
    try:
        fn = make_reward({"kind": "callable", "target": "rlkit2_test_user_reward:count_words", "length_coef": 0.5,
                          "target_length": 2, "empty_penalty": 10.0})
        # r = words - 0.5 * |words - 2| - 10 * [empty]
        assert fn(["d"] * 3, ["a b c d", "a b", ""]).tolist() == [3.0, 2.0, -11.0]
    finally:
        del sys.modules[mod.__name__]


def test_callable_target_is_found_in_the_working_directory(tmp_path, monkeypatch):
    """A console script (`rlkit2-train`) has no working directory on sys.path; `python -m` has. The target of
    `reward=callable` is found by both (so a study's `experiments.x:fn` works from the repository root)."""
    pkg = tmp_path / "rlkit2_test_cwd_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def two(docs, resps):\n    return [2.0] * len(resps)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert make_reward({"kind": "callable", "target": "rlkit2_test_cwd_pkg:two"})(["d"], ["r"]).tolist() == [2.0]
        assert sys.path[-1] == str(tmp_path)  # appended: installed packages keep precedence
        with pytest.raises(ConfigError, match="could not be imported"):
            make_reward({"kind": "callable", "target": "rlkit2_test_no_such_pkg:f"})
    finally:
        sys.modules.pop("rlkit2_test_cwd_pkg", None)


def test_reward_config_errors():
    with pytest.raises(ConfigError, match="unknown reward.kind 'nli'"):
        make_reward({"kind": "nli"})
    with pytest.raises(ConfigError, match="bad reward config"):
        make_reward({"kind": "keyword", "wrod": "x"})
    with pytest.raises(ConfigError, match="package.module:function"):
        make_reward({"kind": "callable", "target": "nope"})


def test_reward_model_scalar_head(bert_tok, tiny_nli, tmp_path):
    import copy

    from rlkit2.rewards.reward_model import RewardModel, RewardModelReward

    trunk = copy.deepcopy(tiny_nli.bert)  # trained below; keep the shared fixture intact
    rm = RewardModel(trunk, bert_tok, pooling="mean", max_length=64)
    out = rm(["doc one.", "doc two."], ["a summary.", "another one."])
    assert out.shape == (2,) and out.requires_grad
    assert rm.features(["d"], ["r"]).shape == (1, 32)
    # a step of Bradley-Terry training moves the preferred response up
    from rlkit2.rewards.bradley_terry import bradley_terry_loss

    opt = torch.optim.SGD(rm.parameters(), lr=0.5)
    before = (rm(["d"], ["good answer."]) - rm(["d"], ["bad answer."])).item()
    for _ in range(5):
        loss = bradley_terry_loss(rm(["d"], ["good answer."]), rm(["d"], ["bad answer."]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (rm(["d"], ["good answer."]) - rm(["d"], ["bad answer."])).item() > before
    rm.save(str(tmp_path / "rm.pt"))
    fresh = RewardModel(copy.deepcopy(trunk), bert_tok, pooling="mean", max_length=64).load(str(tmp_path / "rm.pt"))
    assert torch.allclose(RewardModelReward(fresh)(["d"], ["x."]), RewardModelReward(rm)(["d"], ["x."]))


def test_sentence_level_chunks_and_mean_pool_classifier_roundtrip(bert_tok, tmp_path):
    from rlkit2.rewards.entailment import MeanPoolClassifier

    doc = "alice likes tea. bob owns a cat. carol lives in rome."
    assert chunk_premise(bert_tok, doc, "bob owns a cat.", 128, max_sentences=1) == [
        "alice likes tea.", "bob owns a cat.", "carol lives in rome."]
    assert len(chunk_premise(bert_tok, doc, "bob owns a cat.", 128)) == 1  # everything fits in one chunk
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=bert_tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64))
    clf = MeanPoolClassifier(enc, ["entailment", "neutral", "contradiction"]).eval()
    clf.save_dir(tmp_path / "nli", bert_tok)
    fn = make_reward({"kind": "entailment", "model": str(tmp_path / "nli"), "aggregate": "sentence_min",
                      "premise_sentences": 1, "max_length": 64})
    direct = EntailmentReward(clf, bert_tok, "entailment", 64, aggregate="sentence_min", premise_sentences=1)
    got = fn([doc], ["bob owns a cat. alice likes tea."])
    assert torch.allclose(got, direct([doc], ["bob owns a cat. alice likes tea."]), atol=1e-6)
    per = [direct.entailment_probs(["alice likes tea.", "bob owns a cat.", "carol lives in rome."], [h] * 3).max()
           for h in ("bob owns a cat.", "alice likes tea.")]
    assert got.item() == pytest.approx(min(per).item(), abs=1e-6)
