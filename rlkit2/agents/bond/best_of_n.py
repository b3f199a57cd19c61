"""Best-of-N sampling as an Actor: draw N responses per prompt, keep the one the reward model scores highest.

The inference-time baseline BOND distils: it reaches a high reward with no training, at N times the
generation cost (plus N reward-model calls) per query. `BestOfNActor` wraps any generator with
`rollout(prompts, num_samples) -> object with .texts` (the samples of a prompt contiguous), which is what
`rlkit2.lm.generation.LMActor` provides, and any reward function `reward_fn(documents, responses) -> [B]`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlkit2.core import BaseActor, ConfigError


def document_from_prompt(template: str) -> Callable[[str], str]:
    """Inverse of `template.format(document=...)` (the text env's prompt template), for reward models
    that score (document, response) pairs; a prompt that does not match is passed through unchanged."""
    if "{document}" not in template:
        raise ConfigError(f"prompt template '{template}' must contain '{{document}}'")
    pre, _, post = template.partition("{document}")
    rx = re.compile("^" + re.escape(pre) + "(.*)" + re.escape(post) + "$", re.S)

    def extract(prompt: str) -> str:
        m = rx.match(prompt)
        return m.group(1) if m else prompt

    return extract


@dataclasses.dataclass
class BestOfNResult:
    texts: list[str]  # the winner of each prompt [B]
    rewards: torch.Tensor  # the winner's reward [B]
    all_rewards: torch.Tensor  # [B, N]
    index: torch.Tensor  # [B] which sample won
    samples: list[list[str]]  # [B][N]


class BestOfNActor(BaseActor):
    """N samples, highest reward wins (first sample on ties)."""

    def __init__(self, generator: Any, reward_fn: Callable[[Sequence[str], Sequence[str]], torch.Tensor], n: int,
                 document_fn: Callable[[str], str] | None = None):
        if n < 1:
            raise ConfigError(f"Best-of-N needs n >= 1, got {n}")
        self.generator, self.reward_fn, self.n = generator, reward_fn, int(n)
        self.document_fn = document_fn or (lambda p: p)
        self.samples_generated = 0  # inference-cost counters (generations and reward-model calls)
        self.reward_calls = 0

    def select(self, prompts: Sequence[str], documents: Sequence[str] | None = None) -> BestOfNResult:
        prompts = list(prompts)
        docs = list(documents) if documents is not None else [self.document_fn(p) for p in prompts]
        texts = list(self.generator.rollout(prompts, num_samples=self.n).texts)
        if len(texts) != len(prompts) * self.n:
            raise RuntimeError(f"generator returned {len(texts)} samples for {len(prompts)} prompts x n={self.n}")
        rewards = self.reward_fn([d for d in docs for _ in range(self.n)], texts).float().reshape(len(prompts), self.n)
        self.samples_generated += len(texts)
        self.reward_calls += len(texts)
        idx = rewards.argmax(1)
        samples = [texts[i * self.n: (i + 1) * self.n] for i in range(len(prompts))]
        best = [samples[i][int(j)] for i, j in enumerate(idx)]
        return BestOfNResult(best, rewards.gather(1, idx[:, None]).squeeze(1), rewards, idx, samples)

    def act(self, observation: str | Sequence[str]) -> str | list[str]:
        if isinstance(observation, str):
            return self.select([observation]).texts[0]
        return self.select(list(observation)).texts
