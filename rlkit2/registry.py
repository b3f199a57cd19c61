"""Name -> builder tables for agents and environment kinds.

An agent package registers itself once (`register_agent`) with its typed config
class, its family (which training loop runs it) and a builder: `make_agent(config, spec_or_env, replay, seed,
**kw) -> rlkit2.core.Agent`, defined in the agent's `builder.py`. Hydra's config
group `agent/<name>.yaml` and `rlkit2.make(name, ...)` both resolve through here,
so an unknown name fails with the list of valid ones.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from rlkit2.core import Agent, ConfigError, EnvSpec

__all__ = ["Agent", "AgentEntry", "EnvSpec", "agent_names", "build_agent", "declare_agent_module", "get_agent",
           "get_runner", "make_env", "register_agent", "register_env_kind", "register_runner"]


@dataclasses.dataclass
class AgentEntry:
    name: str
    config_cls: type[Any]
    family: str  # "control" (online/offline RL, BC), "imitation" (POIR), "lm" (RLHF)
    # make_agent(config, spec_or_env, replay, seed, **kw) -> Agent: an EnvSpec and a replay for control and
    # imitation agents; a text env (replay None; tokenizer=, reward_fn= keywords) for language agents. Typed Any
    # out so a runner reads its family's learner (`.learner.policy`, ...) without casts.
    builder: Callable[..., Any]
    offline: bool = True


_AGENTS: dict[str, AgentEntry] = {}
# Modules imported lazily so `import rlkit2` stays light; each registers its agents on import.
_AGENT_MODULES: list[str] = []


def register_agent(name: str, config_cls: type, family: str, builder: Callable[..., Agent], offline: bool) -> None:
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


def build_agent(name: str, config: Any, spec: Any, replay: Any = None, seed: int = 0, **kw: Any) -> Agent:
    """Build agent `name` of any family with its registered builder (`spec`: an EnvSpec for control and
    imitation agents, a text env for language agents; `kw`: a language builder's tokenizer= and reward_fn=).
    The result records its name and typed config (and the spec for control agents), so a control policy can be
    saved as weights + config and rebuilt (rlkit2.policy)."""
    from rlkit2.config import to_config

    entry = get_agent(name)
    config = to_config(config, entry.config_cls, where=f"agent '{name}'")
    agent = entry.builder(config, spec, replay, seed, **kw)
    if not isinstance(agent, Agent):  # pragma: no cover - a registered builder broke its contract
        raise ConfigError(f"builder of agent '{name}' returned {type(agent).__name__}, not rlkit2.Agent")
    agent.name, agent.config = name, config
    agent.spec = spec if isinstance(spec, EnvSpec) else None
    return agent


def agent_names() -> list[str]:
    _load_all()
    return sorted(_AGENTS)


# --------------------------------------------------------------------------- training loops
# A family's runner: run(cfg, run_dir, logger) -> dict of final metrics, registered by its module
# (rlkit2.run.control for "control"); each builds the one run loop (rlkit2.run.loop) with its phase. Imported by
# name on first use, as agents are, so the layers below the runners (data generation trains SAC) reach a runner
# through this table without importing the runner layer.
_RUNNERS: dict[str, Callable[..., dict[str, float]]] = {}
_RUNNER_MODULES = {"control": "rlkit2.run.control", "imitation": "rlkit2.run.imitation", "lm": "rlkit2.run.lm"}


def register_runner(family: str, fn: Callable[..., dict[str, float]]) -> None:
    _RUNNERS[family] = fn


def get_runner(family: str) -> Callable[..., dict[str, float]]:
    if family not in _RUNNERS and family in _RUNNER_MODULES:
        importlib.import_module(_RUNNER_MODULES[family])
    if family not in _RUNNERS:
        raise ConfigError(f"no training loop registered for family '{family}' (have {sorted(_RUNNERS)})")
    return _RUNNERS[family]


# --------------------------------------------------------------------------- environment kinds
# env configs carry `kind` ("gym", "robosuite", "text"); make_env dispatches on it.
_ENV_KINDS: dict[str, Callable[..., Any]] = {}
_ENV_MODULES = {"gym": "rlkit2.envs.gym_mujoco", "robosuite": "rlkit2.envs.robosuite", "text": "rlkit2.envs.text"}


def register_env_kind(kind: str, maker: Callable[..., Any]) -> None:
    """`maker(env_cfg, seed)` returns a Gymnasium-style env; `maker(env_cfg, seed, render_mode="rgb_array")` one
    that renders frames (a kind that cannot render raises ConfigError)."""
    _ENV_KINDS[kind] = maker


def make_env(env_cfg: Any, seed: int | None = None, render_mode: str | None = None) -> Any:
    kind = getattr(env_cfg, "kind", None) or env_cfg["kind"]
    if kind not in _ENV_KINDS and kind in _ENV_MODULES:
        importlib.import_module(_ENV_MODULES[kind])
    if kind not in _ENV_KINDS:
        raise ConfigError(f"unknown env kind '{kind}'; valid kinds: {', '.join(sorted(_ENV_MODULES))}")
    if render_mode is None:
        return _ENV_KINDS[kind](env_cfg, seed)
    return _ENV_KINDS[kind](env_cfg, seed, render_mode=render_mode)


# Built-in agents (each module calls register_agent at import).
for _m in (
    "rlkit2.agents.td3",
    "rlkit2.agents.sac",
    "rlkit2.agents.td3_bc",
    "rlkit2.agents.iql",
    "rlkit2.agents.cql",
    "rlkit2.agents.qsarsa",
    "rlkit2.agents.bc",
    "rlkit2.agents.bc_rnn",
    "rlkit2.agents.offline_bc",
    "rlkit2.agents.poir",
    "rlkit2.agents.ppo_lm",
    "rlkit2.agents.warp",
    "rlkit2.agents.bond",
):
    declare_agent_module(_m)
