"""A tiny bag-of-words reward model for tests: linear in its parameters, with dropout, head and features."""

from __future__ import annotations

import zlib

import torch
from torch import nn


class BagOfWordsRM(nn.Module):
    def __init__(self, buckets: int = 64, hidden: int = 0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.buckets = buckets
        self.emb = nn.Parameter(torch.randn(buckets, hidden or buckets, generator=g) * 0.1) if hidden else None
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(hidden or buckets, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g) * 0.01)
            self.head.bias.zero_()

    def _bow(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        x = torch.zeros(len(responses), self.buckets)
        for i, r in enumerate(responses):
            for w in r.split():
                x[i, zlib.crc32(w.encode()) % self.buckets] += 1.0
        return x

    def features(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        x = self._bow(prompts, responses)
        return torch.tanh(x @ self.emb) if self.emb is not None else x

    def forward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return self.head(self.drop(self.features(prompts, responses))).squeeze(-1)


def toy_pairs(n: int, seed: int = 0):
    """Chosen responses contain more 'good' words than rejected ones (the exact checker: count of 'good')."""
    from rlkit2.rewards.bradley_terry import PreferencePair

    g = torch.Generator().manual_seed(seed)
    filler = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
    pairs = []
    for _ in range(n):
        a, b = torch.randint(0, 4, (2,), generator=g).tolist()
        if a == b:
            b = a + 1
        def resp(k: int) -> str:
            words = [filler[int(i)] for i in torch.randint(0, len(filler), (4,), generator=g)] + ["good"] * k
            perm = torch.randperm(len(words), generator=g).tolist()
            return " ".join(words[i] for i in perm)
        hi, lo = max(a, b), min(a, b)
        pairs.append(PreferencePair("p", resp(hi), resp(lo)))
    return pairs


def patch_tiny_bert(monkeypatch):
    """Make `RewardModel.from_pretrained` build a tiny seeded 1-layer BERT on the shipped MiniLM tokenizer (no
    weights to download); returns that factory, `tiny(name_or_path, pooling, max_length, dropout)`."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from rlkit2.rewards.entailment import minilm_path
    from rlkit2.rewards.reward_model import RewardModel

    tok = AutoTokenizer.from_pretrained(str(minilm_path()))

    def tiny(name_or_path, pooling="mean", max_length=64, dropout=0.0):
        torch.manual_seed(0)
        trunk = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32))
        return RewardModel(trunk, tok, pooling, max_length, dropout)

    monkeypatch.setattr(RewardModel, "from_pretrained", classmethod(lambda cls, *a, **k: tiny(*a, **k)))
    return tiny
