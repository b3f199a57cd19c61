"""The one transition replay: a ring buffer for control agents (online and offline).

Storage is NumPy arrays allocated once; torch tensors are zero-copy views of them,
so a batch is one `torch.randint` and one gather per field: no Python loop and no
NumPy->torch copy per step (docs/architecture.md, performance habits). The same buffer holds
a fixed offline dataset (`from_arrays`) or grows online (`add`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from rlkit2 import distributed
from rlkit2.core import DataError

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals")


@dataclasses.dataclass
class Batch:
    """A batch of transitions. `next_actions` is the dataset's a' (SARSA targets) when known."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminals: torch.Tensor
    next_actions: torch.Tensor | None = None
    # 1 where a' is the dataset's real next action, 0 where it is unknown (after a timeout or the last row):
    # a SARSA target cannot bootstrap there.
    next_action_valid: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        moved: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        moved = {k: (v.to(device, non_blocking=non_blocking) if v is not None else None) for k, v in moved.items()}
        return Batch(**moved)


class TransitionReplay:
    """Ring buffer of (s, a, r, s', terminal[, a']) transitions.

    `terminals` marks a true end of episode (the bootstrap is cut); a time-limit
    truncation is *not* a terminal. `next_actions` is stored when `with_next_actions`
    (offline datasets, where a' is known) and is what SARSA-style targets use.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        *,
        with_next_actions: bool = False,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        if capacity <= 0:
            raise DataError(f"replay capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.with_next_actions = with_next_actions
        self.device = torch.device(device)
        shapes: dict[str, tuple[int, ...]] = {
            "observations": (obs_dim,),
            "actions": (act_dim,),
            "rewards": (),
            "next_observations": (obs_dim,),
            "terminals": (),
        }
        if with_next_actions:
            shapes["next_actions"] = (act_dim,)
            shapes["next_action_valid"] = ()
        self._np = {k: np.zeros((self.capacity, *s), dtype=np.float32) for k, s in shapes.items()}
        self._torch = {k: torch.from_numpy(v) for k, v in self._np.items()}
        self._cursor = 0
        self._size = 0
        self.generator = torch.Generator().manual_seed(seed)

    # ----------------------------------------------------------------- filling
    def add(
        self,
        observation: NDArray[Any],
        action: NDArray[Any],
        reward: float,
        next_observation: NDArray[Any],
        terminal: bool,
        next_action: NDArray[Any] | None = None,
    ) -> None:
        i = self._cursor
        self._np["observations"][i] = observation
        self._np["actions"][i] = action
        self._np["rewards"][i] = reward
        self._np["next_observations"][i] = next_observation
        self._np["terminals"][i] = float(terminal)
        if self.with_next_actions:
            if next_action is None:
                raise DataError("this replay stores next_actions; add() needs next_action")
            self._np["next_actions"][i] = next_action
            self._np["next_action_valid"][i] = 1.0
        self._cursor = (i + 1) % self.capacity
        self._size = min(self._size + 1, self.capacity)

    def add_batch(self, arrays: Mapping[str, NDArray[Any]]) -> None:
        """Append many transitions at once (wrapping around the ring)."""
        n = len(arrays["observations"])
        if self.with_next_actions and "next_action_valid" not in arrays:
            arrays = {**arrays, "next_action_valid": np.ones(n, dtype=np.float32)}
        for k in self._np:
            if k not in arrays:
                raise DataError(f"add_batch: missing field '{k}' (have {sorted(arrays)})")
            if len(arrays[k]) != n:
                raise DataError(f"add_batch: field '{k}' has {len(arrays[k])} rows, expected {n}")
        if n > self.capacity:  # only the last `capacity` survive a ring anyway
            arrays = {k: v[-self.capacity :] for k, v in arrays.items()}
            n = self.capacity
        idx = (self._cursor + np.arange(n)) % self.capacity
        for k, buf in self._np.items():
            buf[idx] = np.asarray(arrays[k], dtype=np.float32).reshape(buf[idx].shape)
        self._cursor = int((self._cursor + n) % self.capacity)
        self._size = min(self._size + n, self.capacity)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]], *, seed: int = 0,
                    device: str | torch.device = "cpu") -> TransitionReplay:
        """A replay holding exactly a fixed dataset (offline RL, demonstrations)."""
        for k in FIELDS:
            if k not in arrays:
                raise DataError(f"dataset is missing '{k}' (have {sorted(arrays)})")
        n = len(arrays["observations"])
        if n == 0:
            raise DataError("dataset is empty: no transitions to learn from")
        obs_dim = int(np.prod(arrays["observations"].shape[1:]))
        act_dim = int(np.prod(arrays["actions"].shape[1:]))
        replay = cls(n, obs_dim, act_dim, with_next_actions="next_actions" in arrays, seed=seed, device=device)
        replay.add_batch(arrays)
        return replay

    # ----------------------------------------------------------------- sampling
    def __len__(self) -> int:
        return self._size

    def sample(self, batch_size: int) -> Batch:
        if self._size == 0:
            raise DataError("cannot sample from an empty replay")
        idx = torch.randint(0, self._size, (batch_size,), generator=self.generator)
        if distributed.is_active():  # same global batch on every rank; keep this rank's shard
            idx = idx[distributed.shard_slice(batch_size)]
        return self.gather(idx)

    def gather(self, idx: torch.Tensor) -> Batch:
        """The rows `idx` as a Batch on `self.device`. Storage stays in host memory; for a CUDA device the gathered
        rows are pinned and copied without blocking (the caching host allocator keeps each pinned block until its
        copy is done), other devices get a plain copy."""
        if self.device.type == "cpu":
            return Batch(**{k: v.index_select(0, idx) for k, v in self._torch.items()})
        if self.device.type == "cuda":
            fields: dict[str, Any] = {k: v.index_select(0, idx).pin_memory().to(self.device, non_blocking=True)
                                      for k, v in self._torch.items()}
        else:
            fields = {k: v.index_select(0, idx).to(self.device) for k, v in self._torch.items()}
        return Batch(**fields)

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The stored transitions in insertion order (oldest first); views where possible."""
        if self._size < self.capacity:
            return {k: v[: self._size] for k, v in self._np.items()}
        order = (self._cursor + np.arange(self.capacity)) % self.capacity
        return {k: v[order] for k, v in self._np.items()}

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "arrays": {k: v[: self._size].copy() for k, v in self._np.items()},
            "cursor": self._cursor,
            "size": self._size,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        size = int(state["size"])
        for k, v in state["arrays"].items():
            if k not in self._np:
                raise DataError(f"replay checkpoint has unknown field '{k}'")
            self._np[k][:size] = v
        self._size, self._cursor = size, int(state["cursor"])
        self.generator.set_state(torch.as_tensor(state["generator"]).cpu())
