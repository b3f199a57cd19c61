"""The update guard and the log window: what every family's learner update goes through.

`UpdateGuard` runs one learner update under `trainer.nan_policy` (stop: raise naming the metric, the step and
the last good checkpoint; skip: restore the pre-update state and count it). `MetricAccumulator` sums the
window's metrics as tensors (no host sync per update) and is checkpointed, so a resume mid-window logs the
same averages.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.core import NumericalError


class MetricAccumulator:
    """Sums tensor metrics between log steps without reading them (no host sync in the loop)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, metrics: dict[str, Any]) -> None:
        for k, v in metrics.items():
            v = torch.as_tensor(v, dtype=torch.float32).detach()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        """The sums of the current log window: a resume mid-window logs the same averages."""
        return {"sums": {k: v.clone() for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums, self.count = {k: v.clone() for k, v in state["sums"].items()}, int(state["count"])

    def pop(self, prefix: str = "train/") -> dict[str, float]:
        # keys a learner already namespaced (the language learners' "rollout/...", "train/...") are kept as they are
        out = {k if "/" in k else f"{prefix}{k}": float(v) / max(self.count, 1) for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return out


def check_finite(metrics: dict[str, Any]) -> str | None:
    """Name of the first non-finite metric, or None."""
    for k, v in metrics.items():
        if not bool(torch.isfinite(torch.as_tensor(v)).all()):
            return k
    return None


def nonfinite_module(learner: Any) -> str | None:
    """Name of the first of `learner.modules` (a TorchLearner's named modules) holding a NaN/inf parameter.

    A NaN/inf *gradient* with a finite loss shows up here after the optimiser step (Adam turns it into
    NaN parameters). One read of all parameters: done every step under nan_policy=skip (which already
    copies the state each step), otherwise only before a checkpoint is written, so none is ever poisoned.
    """
    modules = getattr(learner, "modules", None)
    if not isinstance(modules, dict):
        return None
    for name, module in modules.items():
        params = [p.detach().reshape(-1) for p in module.parameters()] if isinstance(module, torch.nn.Module) else []
        if params and not bool(torch.isfinite(torch.cat(params)).all()):
            return name
    return None


class UpdateGuard:
    """One learner update under `trainer.nan_policy`; the one NaN/inf mechanism every runner uses.

    "stop": a non-finite metric raises NumericalError naming it, the step and the newest valid checkpoint in
    `ckpt_dir` (good by construction: `check_before_save` refuses to write poisoned parameters). "skip": the
    learner's state is copied before each update and restored when a metric or a parameter comes out
    non-finite, but the `samplers` (replays with a `generator`) are not rewound: learners carry the replay's
    RNG in their state, and rewinding it would redraw the same bad batch forever. `skipped` counts the
    dropped updates (logged as train/skipped_updates, saved in checkpoints).
    """

    def __init__(self, learner: Any, nan_policy: str, ckpt_dir: Path, samplers: Any = ()):
        self.learner, self.nan_policy, self.ckpt_dir = learner, nan_policy, Path(ckpt_dir)
        self.samplers = [s for s in samplers if s is not None and hasattr(s, "generator")]
        self.skipped = 0

    @property
    def skipping(self) -> bool:
        return self.nan_policy == "skip"

    def fault(self, name: str, step: int, described: bool = False) -> None:
        found = ckpt.latest_valid(self.ckpt_dir)
        where = f"last good checkpoint: {found[0]}" if found else "no checkpoint was written yet"
        what = name if described else f"non-finite value in '{name}'"
        raise NumericalError(f"{what} at step {step} ({where}); "
                             "set trainer.nan_policy=skip to drop such updates instead")

    def step(self, step: int) -> dict[str, Any] | None:
        """`learner.step()`'s metrics, or None when the update was dropped (skip)."""
        backup = copy.deepcopy(self.learner.state_dict()) if self.skipping else None
        described = False
        try:
            metrics = self.learner.step()
            bad = check_finite(metrics)
        except NumericalError as e:  # a learner that checks its own loss
            metrics, bad, described = {}, str(e), True
        if bad is None and self.skipping:
            module = nonfinite_module(self.learner)
            bad = None if module is None else f"parameters of '{module}' (a NaN/inf gradient)"
        if bad is None:
            return metrics
        if not self.skipping:
            self.fault(bad, step, described)
        generators = [s.generator.get_state() for s in self.samplers]
        self.learner.load_state_dict(backup)
        for s, g in zip(self.samplers, generators, strict=True):
            s.generator.set_state(g)
        self.skipped += 1
        return None

    def check_before_save(self, step: int) -> None:
        """Never write a checkpoint holding NaN/inf parameters over the last good one."""
        module = nonfinite_module(self.learner)
        if module is not None:
            self.fault(f"parameters of '{module}' (a NaN/inf gradient)", step)
