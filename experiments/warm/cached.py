"""A budget device for the WARM experiment: MiniLM reward models whose lower layers are frozen and shared.

Every member fine-tunes only the top `6 - k` encoder layers and the head (WARM's shared-initialisation
recipe is unchanged: all members start from the same pretrained MiniLM + linear-probe head). The frozen lower
part (embeddings + k layers) is identical in every member -- so averaging it is exact and changes nothing --
and its output for a (document, summary) pair is computed once and cached, shared by all members, WARM and
the ensemble. On this 2-core machine shared by several jobs that makes the study fit its budget.

`CachedRM` is a reward model `model(prompts, responses) -> [B]` (with `head` and `features`), so
rlkit2.rewards.bradley_terry / rlkit2.rewards.warm train, evaluate and average it unchanged: its state dict
holds only the per-member part. `to_full_model` rebuilds a plain `RewardModel` (for `reward=warm`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class SharedLower:
    """The frozen lower trunk and its cache; deep copies share it (it is not a member's parameter)."""

    def __init__(self, rm: Any, k: int, max_cache: int = 400_000):
        self.rm = rm.eval()
        self.k = k
        self.cache: dict[tuple[str, str], torch.Tensor] = {}
        self.max_cache = max_cache

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedLower:
        return self

    @torch.no_grad()
    def hidden(self, prompts: list[str], responses: list[str], batch: int = 64) -> list[torch.Tensor]:
        keys = list(zip(prompts, responses, strict=True))
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))
        for i in range(0, len(todo), batch):
            chunk = todo[i: i + batch]
            enc = self.rm.encode([c[0] for c in chunk], [c[1] for c in chunk])
            out = self.rm.trunk(**enc, output_hidden_states=True)
            h = out.hidden_states[self.k]
            lengths = enc["attention_mask"].sum(1).tolist()
            for j, key in enumerate(chunk):
                if len(self.cache) < self.max_cache:
                    self.cache[key] = h[j, : int(lengths[j])].clone()
                else:  # pragma: no cover - only for very long runs
                    self.cache.clear()
                    self.cache[key] = h[j, : int(lengths[j])].clone()
        return [self.cache[k] for k in keys]


class CachedRM(nn.Module):
    """Per-member part of a MiniLM reward model: encoder layers k.. + mean pooling + dropout + head."""

    def __init__(self, lower: SharedLower):
        super().__init__()
        rm = lower.rm
        self.lower = lower
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in rm.trunk.encoder.layer[lower.k:])
        self.dropout = nn.Dropout(rm.dropout.p)
        self.head = copy.deepcopy(rm.head)
        for p in self.parameters():
            p.requires_grad_(True)

    def features(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        hs = self.lower.hidden(list(prompts), list(responses))
        L = max(h.shape[0] for h in hs)
        x = torch.zeros(len(hs), L, hs[0].shape[1])
        am = torch.zeros(len(hs), L)
        for i, h in enumerate(hs):
            x[i, : h.shape[0]] = h
            am[i, : h.shape[0]] = 1.0
        ext = (1.0 - am[:, None, None, :]) * torch.finfo(x.dtype).min  # additive mask over keys
        for layer in self.layers:
            out = layer(x, attention_mask=ext)
            x = out[0] if isinstance(out, tuple) else out
        return (x * am[..., None]).sum(1) / am.sum(1, keepdim=True).clamp_min(1.0)

    def forward(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        return self.head(self.dropout(self.features(prompts, responses))).squeeze(-1)


def to_full_model(member: CachedRM) -> Any:
    """A plain rlkit2 RewardModel with this member's upper layers and head (what `reward=warm` loads)."""
    full = copy.deepcopy(member.lower.rm)
    k = member.lower.k
    for i, layer in enumerate(member.layers):
        full.trunk.encoder.layer[k + i].load_state_dict(layer.state_dict())
    full.head.load_state_dict(member.head.state_dict())
    return full


@torch.no_grad()
def check_equivalence(lower: SharedLower, prompts: list[str], responses: list[str]) -> float:
    """Max |CachedRM - RewardModel| on a batch (eval mode): the split forward must equal the full one."""
    m = CachedRM(lower).eval()
    full = to_full_model(m).eval()
    return float((m(prompts, responses) - full(prompts, responses)).abs().max())
