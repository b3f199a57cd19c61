"""Small configs and helpers shared by the robustness tests."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

# A small, fast offline run (TD3+BC on a 600-row Hopper file); tests add total_steps etc.
OFFLINE = ["agent=td3_bc", "env=hopper", "agent.hidden=[32,32]", "agent.batch_size=32", "trainer.eval_episodes=1",
           "trainer.progress=false", "logger.console=false", "trainer.plot=false", "trainer.threads=1"]


def offline_args(data: Path, *extra: str) -> list[str]:
    return [*OFFLINE, f"env.dataset={data}", *extra]


def tensors(tree: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested state dict, by dotted path."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(tree, torch.Tensor):
        out[prefix] = tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            out.update(tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(tree, list | tuple):
        for i, v in enumerate(tree):
            out.update(tensors(v, f"{prefix}.{i}"))
    return out


def assert_same_tensors(a: Any, b: Any, what: str = "") -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys(), f"{what}: different keys"
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{what}: {k} differs"


def all_finite(tree: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors(tree).values() if t.is_floating_point())


def finite_number(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def imitation_args(demos: Path, *extra: str) -> list[str]:
    """A small POIR run on Lift: offline updates, then an online phase of 20-step episodes."""
    return ["agent=poir", "env=robosuite/lift", f"env.dataset={demos}", "env.num_demos=4", "env.horizon=20",
            "agent.prior.hidden=[32,32]", "agent.model_hidden=[32,32]", "agent.ensemble_size=2", "agent.horizon=2",
            "agent.num_samples=8", "agent.batch_size=32", "agent.prior.batch_size=32",
            "agent.online_updates_per_episode=5", "trainer.eval_episodes=1", "trainer.progress=false",
            "logger.console=false", "trainer.plot=false", "trainer.threads=1", *extra]


def lm_args(*extra: str) -> list[str]:
    """A few PPO iterations of the tiny LM on the toy keyword reward."""
    return ["experiment=rlhf_toy", "agent.model.hidden_size=32", "agent.prompts_per_step=8", "agent.minibatch_size=8",
            "trainer.eval_episodes=4", "trainer.progress=false", "trainer.plot=false", "logger.console=false", *extra]
