"""The synthetic summarisation task: the exact checker and the data generators."""

from __future__ import annotations

import json
import random

from rlkit2.lm import synthetic as S

DOC = "alice lives in paris . alice owns a cat . bob likes tea ."


def test_checker_classifies_each_statement():
    c = S.check(DOC, "alice lives in paris . bob likes tea .")
    assert (c.n_statements, c.supported, c.consistent, c.label) == (2, 2, True, "entailment")
    c = S.check(DOC, "alice lives in rome .")  # same entity and relation, other value
    assert (c.contradicted, c.consistent, c.label) == (1, False, "contradiction")
    c = S.check(DOC, "bob works as a pilot . alice owns a cat .")  # nothing about bob's job
    assert (c.unsupported, c.supported, c.consistent, c.label) == (1, 1, False, "neutral")
    c = S.check(DOC, "alice lives in . paris paris")
    assert (c.malformed, c.consistent) == (2, False)
    assert not S.check(DOC, "").consistent  # an empty summary is not a consistent summary


def test_consistency_metrics():
    m = S.consistency_metrics([DOC, DOC], ["alice owns a cat .", "alice owns a dog . bob likes tea ."])
    assert m["true_consistency"] == 0.5
    assert m["statement_precision"] == 2 / 3 and m["hallucination_rate"] == 1 / 3
    assert m["statements"] == 1.5


def test_generators_label_with_the_checker():
    rng = random.Random(0)
    for _ in range(200):
        ex = S.nli_example(rng)
        assert S.NLI_LABELS[ex["label"]] == S.check(ex["premise"], ex["hypothesis"]).label
        ex = S.nli_sentence_example(rng)
        assert S.NLI_LABELS[ex["label"]] == S.check(ex["premise"], ex["hypothesis"]).label
    labels = [S.nli_sentence_example(rng)["label"] for _ in range(900)]
    assert all(abs(labels.count(i) / 900 - 1 / 3) < 0.1 for i in range(3))  # roughly balanced


def test_sft_noise_sets_the_hallucination_rate(tmp_path):
    rng = random.Random(1)
    clean = [S.sft_example(rng, noise=0.0) for _ in range(200)]
    assert all(S.check(e["document"], e["summary"]).consistent for e in clean)
    noisy = [S.sft_example(rng, noise=0.5) for _ in range(400)]
    m = S.consistency_metrics([e["document"] for e in noisy], [e["summary"] for e in noisy])
    assert 0.4 < m["hallucination_rate"] < 0.6
    path = S.write_jsonl(tmp_path / "d.jsonl", 5, seed=0)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 5 and set(rows[0]) == {"document", "summary"}
    assert all(w in S.vocabulary() for r in rows for w in (r["document"] + " " + r["summary"]).split())
