"""Data-parallel learning on torch.distributed (launched by `torchrun`).

The whole mechanism is two hooks in shared code, so every learner gets it:
- `TransitionReplay.sample(B)` draws the same B indices on every rank (same
  generator seed) and keeps this rank's contiguous slice of B / world_size: each
  rank samples its own shard of one global batch;
- `rlkit2.learners.optimizer_step` averages gradients across ranks (one coalesced
  all-reduce) before the optimiser step.
With losses that are means over the batch, K ranks then take exactly the step
one process takes on the combined batch. NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from rlkit2.core import ConfigError


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: str = "cpu") -> tuple[int, int]:
    """Join the process group that `torchrun` describes in the environment; returns (rank, world size)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError("trainer.distributed=true needs a torchrun launch "
                          "(torchrun --nproc_per_node=K -m rlkit2.train ...): RANK/WORLD_SIZE are not set")
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def shard_slice(batch_size: int) -> slice:
    """This rank's slice of a global batch of `batch_size`."""
    w = world_size()
    if batch_size % w:
        raise ConfigError(f"agent.batch_size={batch_size} must be divisible by the number of processes ({w})")
    per = batch_size // w
    return slice(rank() * per, (rank() + 1) * per)


def average_gradients(params: Iterable[torch.Tensor]) -> None:
    """Average `.grad` across ranks with one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset: offset + n].view_as(g))
        offset += n


def broadcast_state(state: Any) -> Any:
    """Rank 0's object (e.g. a learner's initial state dict) on every rank."""
    if not is_active():
        return state
    box = [_on_cpu(state) if is_main() else None]  # pickled tensors unpickle on their saved device: send CPU ones
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _on_cpu(obj: Any) -> Any:
    """`obj` with every tensor in its dicts, lists and tuples on the CPU (no copy for CPU tensors)."""
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):  # plain ones (a namedtuple is passed as it is)
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list when not distributed)."""
    if not is_active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_active():
        dist.barrier()


def shutdown(*, clean: bool = True) -> None:
    """Leave the process group (a no-op outside one). After a clean finish every rank first meets at a
    barrier: a rank that tears gloo down while a peer is still in its last collective or writing its results
    can make the peer's transport thread abort it (SIGABRT, "terminate called without an active exception").
    `clean=False` (a rank that failed) skips the barrier: the peers may never reach it."""
    if dist.is_available() and dist.is_initialized():
        if clean and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
