"""Shaping terms (length, empty responses, scale) wrapped around any reward function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class ShapedReward:
    """r' = scale * r - length_coef * |n_words - target_length| - empty_penalty * [no words]."""

    def __init__(self, base: Any, length_coef: float = 0.0, target_length: int = 0, empty_penalty: float = 0.0,
                 scale: float = 1.0):
        self.base = base
        self.length_coef, self.target_length = float(length_coef), int(target_length)
        self.empty_penalty, self.scale = float(empty_penalty), float(scale)

    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        r = self.base(documents, responses) * self.scale
        words = torch.tensor([len(s.split()) for s in responses], dtype=torch.float32)
        if self.length_coef:
            r = r - self.length_coef * (words - self.target_length).abs()
        if self.empty_penalty:
            r = r - self.empty_penalty * (words == 0).float()
        return r


def maybe_shape(fn: Any, cfg: Any) -> Any:
    lc, ep, sc = (getattr(cfg, k, d) for k, d in (("length_coef", 0.0), ("empty_penalty", 0.0), ("scale", 1.0)))
    if not lc and not ep and sc == 1.0:
        return fn
    return ShapedReward(fn, lc, getattr(cfg, "target_length", 0), ep, sc)
