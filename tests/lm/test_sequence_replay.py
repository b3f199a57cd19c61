"""The sequence replay: padding on add, minibatch coverage, attached fields, checks, state."""

from __future__ import annotations

import pytest
import torch

from rlkit2.core import DataError
from rlkit2.lm.replay import SequenceReplay


def batch(n, lq, t, start=0):
    return {"query_ids": torch.arange(start, start + n)[:, None].repeat(1, lq) + 100,
            "query_mask": torch.ones(n, lq, dtype=torch.long),
            "response_ids": torch.arange(start, start + n)[:, None].repeat(1, t),
            "response_mask": torch.ones(n, t), "logprobs": -torch.ones(n, t), "scores": torch.arange(start, start + n)
            .float()}


def test_add_pads_queries_left_and_responses_right():
    r = SequenceReplay()
    r.add(batch(2, 3, 2), responses=["a", "b"])
    r.add(batch(1, 5, 4, start=2), responses=["c"])
    b = r.all()
    assert len(r) == 3 and b.query_ids.shape == (3, 5) and b.response_ids.shape == (3, 4)
    assert b.query_mask[0].tolist() == [0, 0, 1, 1, 1]  # left padding keeps the prompt next to the response
    assert b.response_mask[0].tolist() == [1, 1, 0, 0]
    assert b.responses == ["a", "b", "c"]


def test_minibatches_cover_every_row_once_per_epoch():
    r = SequenceReplay(seed=0)
    r.add(batch(10, 2, 2))
    seen = []
    for mb in r.minibatches(4, epochs=2):
        seen += mb.scores.long().tolist()
        assert mb.response_ids[:, 0].tolist() == mb.scores.long().tolist()  # rows stay aligned across fields
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))


def test_set_and_sample_and_text_alignment():
    r = SequenceReplay(seed=1)
    r.add(batch(4, 2, 3), documents=["d0", "d1", "d2", "d3"])
    r.set("advantages", torch.arange(4.0)[:, None].repeat(1, 3))
    b = r.sample(6)
    assert b.advantages[:, 0].tolist() == b.scores.tolist()
    assert b.documents == [f"d{int(i)}" for i in b.scores.tolist()]
    with pytest.raises(DataError, match="advantages"):
        r.set("advantages", torch.zeros(3, 3))


def test_bad_adds_and_empty():
    r = SequenceReplay()
    with pytest.raises(DataError, match="empty"):
        r.sample(1)
    with pytest.raises(DataError, match="missing fields"):
        r.add({"query_ids": torch.zeros(1, 1)})
    b = batch(2, 2, 2)
    b["logprobs"] = torch.zeros(3, 2)
    with pytest.raises(DataError, match="'logprobs' has 3 rows"):
        r.add(b)


def test_state_dict_roundtrip():
    r = SequenceReplay(seed=3)
    r.add(batch(5, 2, 2), prompts=list("abcde"))
    s = r.state_dict()
    r2 = SequenceReplay()
    r2.load_state_dict(s)
    assert torch.equal(r.sample(8).scores, r2.sample(8).scores)
    assert r2.all().prompts == list("abcde")
