"""The reward-function interface, user callables, and the reward-kind registry.

A reward function scores a batch: `reward_fn(documents, responses) -> torch.Tensor [B]` (float32,
CPU), where `documents` are the raw source texts the prompts were made from (what an NLI premise
or a reward model's context needs) and `responses` the generated continuations. Any Python
callable with that signature plugs in (`reward.kind=callable reward.target=pkg.module:fn`; the module is
looked up on sys.path, then among the working directory's packages, as `python -m` would find it).

Reward kinds are registered by name (`register_reward_kind`), so a later kind (e.g. `warm`)
adds itself without touching this file: `make_reward(cfg)` dispatches on `cfg.kind` and
validates the config against the kind's dataclass (a misspelt key is a ConfigError).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2.core import ConfigError


@runtime_checkable
class RewardFunction(Protocol):
    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor: ...


@dataclasses.dataclass
class RewardEntry:
    config_cls: type
    maker: Callable[..., RewardFunction]


_KINDS: dict[str, RewardEntry] = {}
# modules imported on first use so `import rlkit2.rewards` stays light
_LAZY = {"entailment": "rlkit2.rewards.entailment", "reward_model": "rlkit2.rewards.reward_model",
         "keyword": "rlkit2.rewards.toy", "callable": "rlkit2.rewards.base", "warm": "rlkit2.rewards.warm"}


def register_reward_kind(kind: str, config_cls: type, maker: Callable[..., RewardFunction]) -> None:
    """`maker(cfg: config_cls, **context) -> RewardFunction`; context may hold `device`."""
    _KINDS[kind] = RewardEntry(config_cls, maker)


def _entry(kind: str) -> RewardEntry:
    if kind not in _KINDS and kind in _LAZY:
        try:
            importlib.import_module(_LAZY[kind])
        except ModuleNotFoundError as e:
            raise ConfigError(f"reward.kind='{kind}' needs module {_LAZY[kind]}, which is not installed: {e}") from e
    if kind not in _KINDS:
        raise ConfigError(f"unknown reward.kind '{kind}'; valid kinds: {', '.join(sorted(set(_KINDS) | set(_LAZY)))}")
    return _KINDS[kind]


def make_reward(cfg: Any, **context: Any) -> RewardFunction:
    """Build the reward function a config describes (dataclass, dict or DictConfig with `kind`)."""
    if cfg is None:
        raise ConfigError("no reward configured: set env.reward (e.g. `reward=entailment`)")
    kind = cfg.kind if hasattr(cfg, "kind") else cfg.get("kind")
    entry = _entry(kind)
    if not isinstance(cfg, entry.config_cls):
        raw = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
        try:
            cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(entry.config_cls), raw))
        except Exception as e:  # noqa: BLE001 - omegaconf raises several types; re-raise as one
            raise ConfigError(f"bad reward config for kind '{kind}': {e}") from e
    fn = entry.maker(cfg, **context)
    from rlkit2.rewards.shaping import maybe_shape

    return maybe_shape(fn, cfg)


# --------------------------------------------------------------------------- shaping options (every kind has them)


@dataclasses.dataclass
class ShapingOptions:
    """Shaping terms added to any reward: r - length_coef * |words - target_length| - empty_penalty * [empty]."""

    length_coef: float = 0.0
    target_length: int = 0
    empty_penalty: float = 0.0
    scale: float = 1.0


# --------------------------------------------------------------------------- user callables


@dataclasses.dataclass
class CallableRewardConfig(ShapingOptions):
    kind: str = "callable"
    target: str = ""  # "package.module:function" taking (documents, responses)


def import_target_module(module: str) -> Any:
    """Import `module`, also from the working directory's packages: `python -m` puts the working directory on
    sys.path but a console script (`rlkit2-train`) does not, so a study's `experiments.x:fn` run from the
    repository root would otherwise be found by one entry point and not the other."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        top = module.split(".")[0]
        here = os.path.isdir(os.path.join(cwd, top)) or os.path.isfile(os.path.join(cwd, top + ".py"))
        if e.name != top or cwd in sys.path or "" in sys.path or not here:
            raise
        sys.path.append(cwd)  # appended: an installed package of the same name still wins
        return importlib.import_module(module)


def load_callable(spec: str) -> Callable[..., Any]:
    if ":" not in spec:
        raise ConfigError(f"reward.target='{spec}' must look like 'package.module:function'")
    mod, _, name = spec.partition(":")
    try:
        obj = getattr(import_target_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"reward.target='{spec}' could not be imported: {e}") from e
    if not callable(obj):
        raise ConfigError(f"reward.target='{spec}' is not callable")
    return obj


class CallableReward:
    """Wraps a user function (documents, responses) -> sequence of floats as a RewardFunction."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        out = self.fn(list(documents), list(responses))
        out = torch.as_tensor(out, dtype=torch.float32).reshape(-1).cpu()
        if out.numel() != len(responses):
            raise ConfigError(f"reward callable {self.fn!r} returned {out.numel()} rewards for {len(responses)} "
                              "responses")
        return out


register_reward_kind("callable", CallableRewardConfig, lambda cfg, **_: CallableReward(load_callable(cfg.target)))
