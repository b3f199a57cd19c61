"""Toy rewards for tests and smoke runs: "say the word X"."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from rlkit2.rewards.base import ShapingOptions, register_reward_kind


@dataclasses.dataclass
class KeywordRewardConfig(ShapingOptions):
    kind: str = "keyword"
    word: str = "paris"
    per_occurrence: bool = False  # False: 1 if the word appears at all; True: fraction of words that are it


class KeywordReward:
    def __init__(self, word: str, per_occurrence: bool = False):
        self.word, self.per_occurrence = word, per_occurrence

    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        out = []
        for r in responses:
            words = r.split()
            if self.per_occurrence:
                out.append(sum(w == self.word for w in words) / max(len(words), 1))
            else:
                out.append(float(self.word in words))
        return torch.tensor(out, dtype=torch.float32)


register_reward_kind("keyword", KeywordRewardConfig, lambda cfg, **_: KeywordReward(cfg.word, cfg.per_occurrence))
