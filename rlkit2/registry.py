"""Name -> builder tables for agents and environment kinds.

An agent package registers itself once (`register_agent`) with its typed config
class, its family (which training loop runs it) and a builder. Hydra's config
group `agent/<name>.yaml` and `rlkit2.make(name, ...)` both resolve through here,
so an unknown name fails with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from rlkit2.core import Actor, ConfigError, Learner


@dataclasses.dataclass
class EnvSpec:
    """What a control agent needs to know about its environment."""

    obs_dim: int
    act_dim: int
    action_low: float = -1.0
    action_high: float = 1.0


@dataclasses.dataclass
class Agent:
    """What a builder returns: the learner, the evaluation (greedy) actor and, for
    online collection, an exploring actor."""

    learner: Learner
    policy: Actor
    explorer: Actor | None = None
    # what rebuilds it from saved weights (rlkit2.save_policy); stamped by build_agent
    name: str = ""
    config: Any = None
    spec: EnvSpec | None = None


@dataclasses.dataclass
class AgentEntry:
    name: str
    config_cls: type
    family: str  # "control" (online/offline RL, BC), "imitation" (POIR), "lm" (RLHF)
    builder: Callable[..., Any]
    offline: bool = True


_AGENTS: dict[str, AgentEntry] = {}
# Modules imported lazily so `import rlkit2` stays light; each registers its agents on import.
_AGENT_MODULES: list[str] = []


def register_agent(name: str, config_cls: type, family: str, builder: Callable[..., Any], offline: bool) -> None:
    _AGENTS[name] = AgentEntry(name, config_cls, family, builder, offline)


def declare_agent_module(module: str) -> None:
    if module not in _AGENT_MODULES:
        _AGENT_MODULES.append(module)


def _load_all() -> None:
    for m in _AGENT_MODULES:
        if importlib.util.find_spec(m) is None:  # not built in this install
            continue
        try:
            importlib.import_module(m)
        except ImportError as e:  # an optional extra (robosuite, transformers) may be absent
            if getattr(e, "name", None) and not str(e.name).startswith("rlkit2"):
                continue
            raise


def get_agent(name: str) -> AgentEntry:
    _load_all()
    if name not in _AGENTS:
        raise ConfigError(f"unknown agent '{name}'; valid agents: {', '.join(sorted(_AGENTS))}")
    return _AGENTS[name]


def build_agent(name: str, config: Any, spec: EnvSpec, replay: Any, seed: int = 0) -> Agent:
    """Build control/imitation agent `name` with its registered builder; the result records its name, typed
    config and spec, so its policy can be saved as weights + config and rebuilt (rlkit2.policy)."""
    agent = get_agent(name).builder(config, spec, replay, seed)
    if not isinstance(agent, Agent):  # pragma: no cover - a registered builder broke its contract
        raise ConfigError(f"builder of agent '{name}' returned {type(agent).__name__}, not rlkit2.Agent")
    agent.name, agent.config, agent.spec = name, config, spec
    return agent


def agent_names() -> list[str]:
    _load_all()
    return sorted(_AGENTS)


# --------------------------------------------------------------------------- training loops
# A family's runner: run(cfg, run_dir, logger) -> dict of final metrics. "control" lives in
# rlkit2/trainer.py; the imitation and language families register their own loops, which
# reuse the shared checkpoint, logger and evaluate machinery.
_RUNNERS: dict[str, Callable[..., dict[str, float]]] = {}


def register_runner(family: str, fn: Callable[..., dict[str, float]]) -> None:
    _RUNNERS[family] = fn


def get_runner(family: str) -> Callable[..., dict[str, float]]:
    if family not in _RUNNERS:
        raise ConfigError(f"no training loop registered for family '{family}' (have {sorted(_RUNNERS)})")
    return _RUNNERS[family]


# --------------------------------------------------------------------------- environment kinds
# env configs carry `kind` ("gym", "robosuite", "text"); make_env dispatches on it.
_ENV_KINDS: dict[str, Callable[..., Any]] = {}
_ENV_MODULES = {"gym": "rlkit2.envs.gym_mujoco", "robosuite": "rlkit2.envs.robosuite", "text": "rlkit2.envs.text"}


def register_env_kind(kind: str, maker: Callable[..., Any]) -> None:
    """`maker(env_cfg, seed)` returns a Gymnasium-style env."""
    _ENV_KINDS[kind] = maker


def make_env(env_cfg: Any, seed: int | None = None) -> Any:
    kind = getattr(env_cfg, "kind", None) or env_cfg["kind"]
    if kind not in _ENV_KINDS and kind in _ENV_MODULES:
        importlib.import_module(_ENV_MODULES[kind])
    if kind not in _ENV_KINDS:
        raise ConfigError(f"unknown env kind '{kind}'; valid kinds: {', '.join(sorted(_ENV_MODULES))}")
    return _ENV_KINDS[kind](env_cfg, seed)


# Built-in agents (each module calls register_agent at import).
for _m in (
    "rlkit2.agents.td3",
    "rlkit2.agents.sac",
    "rlkit2.agents.td3_bc",
    "rlkit2.agents.iql",
    "rlkit2.agents.cql",
    "rlkit2.agents.qsarsa",
    "rlkit2.agents.bc",
    "rlkit2.agents.offline_bc",
    "rlkit2.agents.poir",
    "rlkit2.agents.ppo_lm",
    "rlkit2.agents.warp",
    "rlkit2.agents.bond",
):
    declare_agent_module(_m)
