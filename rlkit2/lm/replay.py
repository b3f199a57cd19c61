"""The sequence replay: whole generated sequences for language agents.

Each row is one (prompt, response) with its token-level data: query ids/mask (left-padded),
response ids/mask (right-padded), log-probs under the behaviour policy and under the reference,
values, the sequence score, and any per-row extras a learner attaches (advantages, returns).
Tensors are padded to a common width when batches of different lengths are added, so a
minibatch is an index tensor and a gather (no Python loop over rows).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from rlkit2.core import DataError

REQUIRED = ("query_ids", "query_mask", "response_ids", "response_mask")
# padding side of each 2-D field when widths differ
LEFT_PADDED = {"query_ids", "query_mask"}


@dataclasses.dataclass
class SequenceBatch:
    """A batch of sequences: tensor `fields` with a shared leading dim, plus text columns."""

    fields: dict[str, torch.Tensor]
    documents: list[str] = dataclasses.field(default_factory=list)
    prompts: list[str] = dataclasses.field(default_factory=list)
    responses: list[str] = dataclasses.field(default_factory=list)

    def __getattr__(self, name: str) -> torch.Tensor:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    def __len__(self) -> int:
        return int(next(iter(self.fields.values())).shape[0]) if self.fields else 0

    def index(self, idx: torch.Tensor) -> SequenceBatch:
        rows = idx.tolist()

        def pick(xs: list[str]) -> list[str]:
            return [xs[i] for i in rows]

        return SequenceBatch({k: v.index_select(0, idx.to(v.device)) for k, v in self.fields.items()},
                             pick(self.documents) if self.documents else [],
                             pick(self.prompts) if self.prompts else [],
                             pick(self.responses) if self.responses else [])


def _pad_to(x: torch.Tensor, width: int, left: bool, value: float = 0) -> torch.Tensor:
    if x.dim() < 2 or x.shape[1] == width:
        return x
    pad = x.new_full((x.shape[0], width - x.shape[1], *x.shape[2:]), value)
    return torch.cat([pad, x] if left else [x, pad], 1)


class SequenceReplay:
    """A buffer of sequences (on-policy: filled by a rollout, consumed by a few epochs, cleared).

    `add(fields, documents=, prompts=, responses=)`; `sample(n)` draws rows uniformly;
    `minibatches(size, epochs)` iterates shuffled disjoint minibatches; `set(name, tensor)` attaches
    per-row data (advantages) computed over the whole buffer.
    """

    def __init__(self, capacity: int = 1 << 20, seed: int = 0, pad_values: Mapping[str, float] | None = None):
        self.capacity = capacity
        self.generator = torch.Generator().manual_seed(seed)
        self.pad_values = dict(pad_values or {})
        self.clear()

    def clear(self) -> None:
        self._fields: dict[str, torch.Tensor] = {}
        self._text: dict[str, list[str]] = {"documents": [], "prompts": [], "responses": []}

    def __len__(self) -> int:
        return int(self._fields["response_ids"].shape[0]) if self._fields else 0

    def add(self, fields: Mapping[str, torch.Tensor], documents: list[str] | None = None,
            prompts: list[str] | None = None, responses: list[str] | None = None) -> None:
        missing = [k for k in REQUIRED if k not in fields]
        if missing:
            raise DataError(f"SequenceReplay.add: missing fields {missing} (have {sorted(fields)})")
        n = int(fields["response_ids"].shape[0])
        for k, v in fields.items():
            if int(v.shape[0]) != n:
                raise DataError(f"SequenceReplay.add: field '{k}' has {v.shape[0]} rows, expected {n}")
        if self._fields and set(fields) != set(self._fields):
            raise DataError(f"SequenceReplay.add: fields {sorted(fields)} differ from stored {sorted(self._fields)}")
        for name, col in (("documents", documents), ("prompts", prompts), ("responses", responses)):
            if col is not None and len(col) != n:
                raise DataError(f"SequenceReplay.add: {len(col)} {name} for {n} rows")
            self._text[name] += list(col) if col is not None else [""] * n
        for k, v in fields.items():
            v = v.detach()
            if k in self._fields:
                old = self._fields[k]
                if v.dim() >= 2:
                    w = max(old.shape[1], v.shape[1])
                    pv = self.pad_values.get(k, 0)
                    old, v = _pad_to(old, w, k in LEFT_PADDED, pv), _pad_to(v, w, k in LEFT_PADDED, pv)
                v = torch.cat([old, v], 0)
            self._fields[k] = v[-self.capacity :]
        for name in self._text:
            self._text[name] = self._text[name][-self.capacity :]

    def set(self, name: str, value: torch.Tensor) -> None:
        if int(value.shape[0]) != len(self):
            raise DataError(f"SequenceReplay.set('{name}'): {value.shape[0]} rows for a buffer of {len(self)}")
        self._fields[name] = value.detach()

    def all(self) -> SequenceBatch:
        return SequenceBatch(dict(self._fields), **{k: list(v) for k, v in self._text.items()})

    def gather(self, idx: torch.Tensor) -> SequenceBatch:
        return self.all().index(idx)

    def sample(self, batch_size: int) -> SequenceBatch:
        if len(self) == 0:
            raise DataError("cannot sample from an empty SequenceReplay")
        return self.gather(torch.randint(0, len(self), (batch_size,), generator=self.generator))

    def minibatches(self, minibatch_size: int, epochs: int = 1) -> Iterator[SequenceBatch]:
        n = len(self)
        if n == 0:
            raise DataError("cannot iterate an empty SequenceReplay")
        for _ in range(epochs):
            perm = torch.randperm(n, generator=self.generator)
            for i in range(0, n, minibatch_size):
                yield self.gather(perm[i : i + minibatch_size])

    def state_dict(self) -> dict[str, Any]:
        return {"fields": dict(self._fields), "text": {k: list(v) for k, v in self._text.items()},
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._fields = dict(state["fields"])
        self._text = {k: list(v) for k, v in state["text"].items()}
        self.generator.set_state(state["generator"])
