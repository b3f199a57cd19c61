"""Windows of `seq_length` consecutive steps of one episode, sampled from a demo replay.

A `TransitionReplay` holds transitions in episode order but keeps no episode ids, so the episodes are read back
from its rows: an episode ends at a row that is terminal (`terminals`), a time-out (`timeouts`, when the arrays
carry it) or a row whose a' is unknown (`next_action_valid == 0`), at the last row, and wherever the next row
does not continue it (`next_observations[i] != observations[i + 1]`: `to_transitions` concatenates demos, and a
demo's next observation is its next row's observation, so a demo that times out is still cut where it ends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from rlkit2.core import DataError


def episode_ends(arrays: Mapping[str, NDArray[Any]]) -> NDArray[np.int64]:
    """For each row (in episode order), the index of the last row of its episode."""
    obs = np.asarray(arrays["observations"])
    n = len(obs)
    if n == 0:
        raise DataError("no transitions: no episodes to cut into windows")
    last = np.asarray(arrays["terminals"]).reshape(n) > 0
    if "timeouts" in arrays:
        last |= np.asarray(arrays["timeouts"]).reshape(n) > 0
    if "next_action_valid" in arrays:
        last |= np.asarray(arrays["next_action_valid"]).reshape(n) == 0
    if "next_observations" in arrays and n > 1:
        nxt = np.asarray(arrays["next_observations"]).reshape(n, -1)
        last[:-1] |= np.any(nxt[:-1] != obs.reshape(n, -1)[1:], axis=1)
    last[-1] = True
    ends = np.flatnonzero(last)
    # row i belongs to the episode of the first end >= i
    return ends[np.searchsorted(ends, np.arange(n))].astype(np.int64)


class SequenceSampler:
    """Draws windows `[s, s + seq_length)` that never cross an episode boundary.

    `pad=True` (robomimic's pad_seq_length): a window may start at any row; rows past its episode's end repeat the
    episode's last row and are masked (`mask` 0). `pad=False`: only windows that fit inside their episode.
    Start rows are drawn uniformly with `generator` (the replay's, which checkpoints save, so a resumed run draws
    the same windows).
    """

    def __init__(self, ends: NDArray[np.int64], seq_length: int, *, pad: bool, generator: torch.Generator):
        self.seq_length, self.pad, self.generator = int(seq_length), bool(pad), generator
        self.ends = torch.as_tensor(ends, dtype=torch.long)
        rows = torch.arange(len(self.ends))
        fits = rows + self.seq_length - 1 <= self.ends
        self.starts = rows if self.pad else rows[fits]

    def __len__(self) -> int:
        """How many distinct windows there are."""
        return len(self.starts)

    def sample_indices(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows (B, T), mask (B, T)): the rows of `batch_size` windows and 1 where a row is not padding."""
        if len(self.starts) == 0:
            longest = int((self.ends - torch.arange(len(self.ends))).max()) + 1 if len(self.ends) else 0
            raise DataError(f"no window of seq_length={self.seq_length} steps fits in one episode (the longest "
                            f"episode has {longest} steps): lower agent.seq_length or set agent.pad_seq_length=true")
        pick = torch.randint(0, len(self.starts), (batch_size,), generator=self.generator)
        start = self.starts[pick]
        rows = start.unsqueeze(1) + torch.arange(self.seq_length).unsqueeze(0)
        end = self.ends[start].unsqueeze(1)
        return torch.minimum(rows, end), (rows <= end).float()
