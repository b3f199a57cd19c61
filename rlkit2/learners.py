"""Shared plumbing for PyTorch learners: state dicts and optimiser steps.

A `TorchLearner` registers its modules and optimisers by name; `state_dict` /
`load_state_dict` then cover parameters, targets, optimiser moments and the
step counter, which is what an exact resume needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn

from rlkit2 import distributed
from rlkit2.core import Learner


def make_adam(params: Iterable[Any], lr: float, **kwargs: Any) -> torch.optim.Adam:
    """Adam with the fastest implementation this build supports (fused, then foreach)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True, **kwargs)


def learner_device(replay: Any) -> torch.device:
    """The device a learner runs on: its replay's (`TransitionReplay(device=...)`, which the runners build from
    `trainer.device`); the CPU without a replay. One place decides: the replay's storage stays in host memory and
    its batches arrive on this device, where the learner's modules and optimiser state live."""
    return torch.device(getattr(replay, "device", None) or "cpu")


def draw_on(device: torch.device, sample: torch.Tensor) -> torch.Tensor:
    """A sample drawn on the CPU (from a CPU `torch.Generator`) moved to `device`. Learners keep their Generators
    on the CPU, so the random streams (and a checkpoint's Generator states) are the same on every device and the
    CPU path is unchanged."""
    return sample.to(device, non_blocking=True)  # no copy when `device` is the CPU


class TorchLearner(Learner):
    """Base for learners built from named torch modules and optimisers.

    `device`: where the modules, optimiser state and batches live (`learner_device(replay)`); a learner moves its
    modules there (`place`) before it creates their optimisers. Saved state loads onto it from any device:
    `load_state_dict` copies into the device's parameters, the optimisers cast their state to their parameters'
    device, and Generator states (CPU Generators) are read as CPU byte tensors."""

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, Any] = {}
        # torch Generators the learner draws from (its own noise, its replay's sampler), saved under these keys so
        # a resume continues the same random streams
        self.generators: dict[str, torch.Generator] = {}
        self.num_steps = 0

    def place(self, *modules: nn.Module) -> None:
        """Move `modules` to this learner's device (before their optimisers are created; no copy on the CPU)."""
        for m in modules:
            m.to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "num_steps": self.num_steps,
            **{k: g.get_state() for k, g in self.generators.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.num_steps = int(state["num_steps"])
        for k, g in self.generators.items():
            if k in state:
                g.set_state(torch.as_tensor(state[k]).cpu())  # Generator.set_state takes a CPU ByteTensor


def replay_generator(replay: Any) -> dict[str, torch.Generator]:
    """{"replay_generator": the replay's sampling Generator} when it has one (offline learners own their replay)."""
    gen = getattr(replay, "generator", None)
    return {"replay_generator": gen} if isinstance(gen, torch.Generator) else {}


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   params: Iterable[torch.Tensor] | None = None,
                   max_grad_norm: float | None = None,
                   grads_only_for: Sequence[torch.Tensor] | None = None) -> torch.Tensor | None:
    """zero_grad -> backward -> (all-reduce) -> (clip) -> step, the one place this sequence is written.

    `grads_only_for`: compute gradients for these tensors alone (`torch.autograd.grad`), so nothing accumulates in
    the modules the loss flowed through (TD3+BC's actor loss runs the critic but must not touch its gradients).
    Returns the gradient norm before clipping when `max_grad_norm` is set (a tensor; not read here).
    """
    optimizer.zero_grad(set_to_none=True)
    if grads_only_for is not None:
        for p, g in zip(grads_only_for, torch.autograd.grad(loss, list(grads_only_for)), strict=True):
            p.grad = g
    else:
        loss.backward()
    if distributed.is_active():  # data-parallel: average gradients across ranks before stepping
        distributed.average_gradients(p for g in optimizer.param_groups for p in g["params"])
    grad_norm = None
    if max_grad_norm is not None:
        plist = list(params) if params is not None else [p for g in optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(plist, max_grad_norm)
    optimizer.step()
    return grad_norm
