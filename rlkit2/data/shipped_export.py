"""Exporting a behaviour policy for shipping: `export_policy` writes the actor of an rlkit2 SAC snapshot, agent
or learner as `<out_dir>/<env>/<role>.safetensors` plus its JSON card (the format: `rlkit2.data.shipped`, which
loads and verifies them), measuring the greedy policy's return when it is not given.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rlkit2.core import ConfigError, DataError
from rlkit2.data.names import D4RL_ENVS
from rlkit2.data.shipped import (
    CARD_FORMAT,
    EVAL_EPISODES,
    EnvSpaces,
    check_fits,
    check_role,
    env_spaces,
    policy_family,
    policy_paths,
    snapshot_step,
)


def _versions() -> dict[str, str]:
    import gymnasium as gym
    import mujoco
    import safetensors
    import torch

    import rlkit2

    return {"torch": torch.__version__, "gymnasium": gym.__version__, "mujoco": mujoco.__version__,
            "rlkit2": rlkit2.__version__, "safetensors": safetensors.__version__}


def _actor_of(source: Any) -> tuple[Any, list[int], int | None]:
    """(TanhGaussianPolicy, hidden widths, env steps or None) of a snapshot path, an Agent or a SAC learner."""
    from rlkit2.networks import TanhGaussianPolicy

    steps: int | None = None
    if isinstance(source, str | os.PathLike):
        from rlkit2 import checkpoint as ckpt

        state = ckpt.load(source)
        if state.get("agent") != "sac":
            raise DataError(f"{source}: a behaviour-policy snapshot of agent '{state.get('agent')}'; only SAC's "
                            "actor is exported")
        steps = int(state["step"]) if "step" in state else None
        hidden = [int(h) for h in state["agent_config"].get("hidden", [256, 256])]
        if "learner" in state:  # rlkit2.data.behaviour snapshots: the whole learner
            from rlkit2.data.behaviour import load_snapshot_agent

            actor = load_snapshot_agent(source).learner.actor
        elif "actor" in state:  # carried snapshots (actor weights only)
            from rlkit2.registry import EnvSpec

            spec = EnvSpec(**state["spec"])
            actor = TanhGaussianPolicy(spec.obs_dim, spec.act_dim, hidden, float(spec.action_high))
            actor.load_state_dict(state["actor"])
        else:
            raise DataError(f"{source}: a snapshot needs 'learner' or 'actor' weights; has {sorted(state)}")
        return actor, hidden, steps
    learner = getattr(source, "learner", source)
    actor = getattr(learner, "actor", None)
    config = getattr(learner, "config", None)
    if not isinstance(actor, TanhGaussianPolicy) or config is None or getattr(config, "name", "sac") != "sac":
        raise ConfigError(f"export_policy: expected a snapshot path, an rlkit2 SAC agent or SAC learner; got "
                          f"{type(source).__name__}")
    return actor, [int(h) for h in config.hidden], steps


def export_policy(source: Any, env: str, role: str, out_dir: str | os.PathLike[str], *, seed: int,
                  returns: tuple[float, float] | None = None, env_steps: int | None = None,
                  learning_starts: int | None = None, eval_episodes: int = EVAL_EPISODES,
                  eval_seed: int = 50_000, extra: dict[str, Any] | None = None) -> Path:
    """Write the actor of an rlkit2 SAC agent as `<out_dir>/<env>/<role>.safetensors` plus its card.

    `source`: a snapshot (`rlkit2.data.behaviour` policy snapshot path: a checkpoint with `agent`,
    `agent_config`, `spec`, `learner` - or a carried one with `actor`), an `rlkit2.registry.Agent` of agent
    "sac" (e.g. `rlkit2.make("sac", env)`), or a `SACLearner`. `seed`: the training run's seed.
    `env_steps`: env steps trained (default: the snapshot's step; required for an agent). `returns`: (mean,
    std) of the greedy policy over `eval_episodes` episodes; measured here when not given.
    `learning_starts`: the run's random warm-up steps (medium-replay replays it). Returns the weights path.
    """
    import torch
    from safetensors.torch import save as save_safetensors

    from rlkit2 import checkpoint as ckpt

    fam = policy_family(env)
    check_role(role)
    actor, hidden, steps = _actor_of(source)
    steps = env_steps if env_steps is not None else steps
    if steps is None:
        raise ConfigError("export_policy: pass env_steps (the env steps this policy was trained for)")
    if snapshot_step(role) is not None and snapshot_step(role) != steps:
        raise ConfigError(f"export_policy: role '{role}' but env_steps={steps}")
    spaces = env_spaces(D4RL_ENVS[fam])
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in actor.state_dict().items()}
    fitted = check_fits(tensors, spaces, hidden, Path(f"<{type(source).__name__} for {role}>"))
    if returns is None:
        returns = _greedy_returns(fitted, spaces, eval_episodes, eval_seed)
    mean, std = (float(r) for r in returns)
    blob = save_safetensors(tensors, metadata={"format": CARD_FORMAT, "env_id": spaces.gym_id, "role": role})
    weights, card_path = policy_paths(fam, role, out_dir)
    card: dict[str, Any] = {
        "format": CARD_FORMAT, "env": fam, "env_id": spaces.gym_id, "role": role, "algorithm": "sac",
        "hidden": hidden, "obs_dim": spaces.obs_dim, "act_dim": spaces.act_dim, "env_steps": int(steps),
        "seed": int(seed), "learning_starts": None if learning_starts is None else int(learning_starts),
        "return_mean": mean, "return_std": std, "eval_episodes": int(eval_episodes),
        "versions": _versions(), "sha256": hashlib.sha256(blob).hexdigest(), "file": weights.name,
        **(extra or {}),
    }
    ckpt.atomic_write_bytes(weights, blob)
    ckpt.atomic_write_bytes(card_path, (json.dumps(card, indent=1) + "\n").encode())
    return weights


def _greedy_returns(actor: Any, spaces: EnvSpaces, episodes: int, seed: int) -> tuple[float, float]:
    from rlkit2.actors import TorchPolicyActor
    from rlkit2.core import evaluate
    from rlkit2.envs.gym_mujoco import GymEnvConfig
    from rlkit2.registry import make_env

    env = make_env(GymEnvConfig(id=spaces.gym_id, max_episode_steps=1000), seed)
    try:
        ev = evaluate(env, TorchPolicyActor(actor.mode, action_low=spaces.action_low, action_high=spaces.action_high),
                      episodes, seed=seed)
    finally:
        env.close()
    return ev["eval/return"], ev["eval/return_std"]
