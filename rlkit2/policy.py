"""Saved policies: a trained control agent's greedy actor as one file, usable without Hydra or training state.

A policy file is weights plus the config that rebuilds them, never a pickled object: `save_policy(agent,
path)` stores the agent's name, typed config, environment spec and learner state (tensors and plain
values) through the checkpoint path (atomic, checksummed `.sha256`, weights-only). `load_policy(path)`
verifies the checksum, rebuilds the agent through the registry and returns its greedy actor: call it on an
observation to get an action. Files of the older pickled format (`rlkit2-policy-v1`) are refused with a
message; `trust=True` loads them by unpickling, which runs any code the file carries (docs/security.md).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2 import checkpoint as ckpt
from rlkit2.checkpoint import CheckpointError
from rlkit2.core import Actor, Agent, ConfigError, EnvSpec
from rlkit2.registry import build_agent, get_agent

POLICY_FILE = "policy.pt"
BEST_POLICY_FILE = "policy_best.pt"  # trainer.keep_best: the policy of the best evaluation
POLICY_FORMAT = "rlkit2-policy-v2"
_LEGACY_FORMAT = "rlkit2-policy-v1"


def save_policy(agent: Agent, path: str | os.PathLike[str], *, env: Any = None, **info: Any) -> Path:
    """Write `agent`'s policy (an `Agent` from `rlkit2.make` or a runner) to `path`; `env`: the env config
    (a mapping) that `rlkit2.make_env` can rebuild for evaluation; `info`: plain values kept beside it."""
    if not isinstance(agent, Agent):
        raise ConfigError(f"save_policy takes the Agent returned by rlkit2.make (it stores weights and config, "
                          f"not a pickled object), got {type(agent).__name__}")
    if agent.config is None or agent.spec is None or not agent.name:
        raise ConfigError("save_policy: this Agent does not record its name, config and spec; build it with "
                          "rlkit2.make (or rlkit2.registry.build_agent)")
    state = {"format": POLICY_FORMAT, "agent": agent.name, "agent_config": dataclasses.asdict(agent.config),
             "spec": dataclasses.asdict(agent.spec), "env": env, "learner": agent.learner.state_dict(),
             "info": info}
    return ckpt.save(state, path)


def placeholder_replay(spec: EnvSpec, device: Any = "cpu") -> Any:
    """Two distinct transitions: enough for builders that read dataset statistics (normaliser, IQL's
    reward scale); the saved learner state then overwrites every statistic the policy uses."""
    from rlkit2.replay import TransitionReplay

    obs = np.stack([np.zeros(spec.obs_dim), np.ones(spec.obs_dim)]).astype(np.float32)
    act = np.zeros((2, spec.act_dim), np.float32)
    arrays = {"observations": obs, "actions": act, "rewards": np.array([0.0, 1.0], np.float32),
              "next_observations": obs, "terminals": np.ones(2, np.float32), "next_actions": act}
    return TransitionReplay.from_arrays(arrays, device=device)


def refuse_language_agent(name: str, where: str) -> None:
    """A language agent's policy is a Hugging Face folder, never rebuilt from saved control-policy state."""
    if get_agent(name).family == "lm":
        raise CheckpointError(f"{where}: agent '{name}' is a language agent; its policy is a Hugging Face folder "
                              "(rlkit2.load_language_policy)")


def rebuild_agent(name: str, agent_config: Any, spec: EnvSpec, learner_state: Any, seed: int = 0,
                  where: str = "", device: Any = "cpu") -> Agent:
    """An agent rebuilt from saved weights and config through the registry (no unpickling), on `device` (the
    CPU unless asked: the saved tensors, read on the CPU, are copied into the device's parameters)."""
    refuse_language_agent(name, where)
    agent = build_agent(name, agent_config, spec, placeholder_replay(spec, device), seed)  # converts the config
    try:
        agent.learner.load_state_dict(learner_state)
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{where}: the saved weights do not fit agent '{name}' as configured: "
                              f"{str(e).strip().splitlines()[0]}") from e
    return agent


def load_policy(path: str | os.PathLike[str], *, with_info: bool = False, trust: bool = False,
                device: Any = "cpu") -> Any:
    """The policy saved in a run dir (`<run_dir>/policy.pt`) or a policy file: `policy(obs) -> action`, run on
    `device` (the CPU by default, whatever device trained it; actions come back as NumPy arrays).

    `trust=True` also loads the older pickled format (it runs code stored in the file: only your own files).
    """
    p = Path(path)
    if p.is_dir():
        p = p / POLICY_FILE
    if not p.is_file():
        raise CheckpointError(f"no saved policy at {path} (a run dir holds {POLICY_FILE} once training ends)")
    try:
        state = ckpt.load(p, trust=trust)
    except CheckpointError as e:
        raise CheckpointError(f"{p} is not a loadable rlkit2 policy file: {e}") from None
    fmt = state.get("format")
    if fmt == _LEGACY_FORMAT and trust:
        return (state["policy"], state["info"]) if with_info else state["policy"]
    if fmt != POLICY_FORMAT:
        raise CheckpointError(f"{p} is not an rlkit2 policy file (no '{POLICY_FORMAT}' marker)")
    try:
        spec = EnvSpec(**state["spec"])
        name = str(state["agent"])
    except (TypeError, KeyError) as e:
        raise CheckpointError(f"{p}: malformed policy file ({e})") from None
    agent = rebuild_agent(name, state["agent_config"], spec, state["learner"], where=str(p), device=device)
    policy: Actor = agent.policy
    info = {"agent": name, "env": state.get("env"), "spec": state["spec"], **dict(state.get("info") or {})}
    return (policy, info) if with_info else policy
