"""The Python API without Hydra: build any agent from its typed config, load a saved policy.

    import rlkit2
    agent = rlkit2.make("qsarsa", env, replay, hidden=[64, 64])    # env: a Gymnasium env or an EnvSpec
    for step in range(10_000):
        metrics = agent.learner.step()                              # samples from `replay` itself
    rlkit2.save_policy(agent, "policy.pt")
    policy = rlkit2.load_policy("policy.pt")                        # or a run dir, or a checkpoint
    action = policy(observation)

`make` covers every registered agent (`rlkit2.agent_names()`): control agents (online and offline RL,
BC, POIR) get an environment spec and a replay; language agents (ppo_lm, warp, jbond) get a text
environment and, optionally, a tokenizer, a reward function and an already-built model. A replay is any
object with `sample(batch_size) -> rlkit2.Batch`; see `make` for the optional extras some agents use.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rlkit2 import checkpoint as ckpt
from rlkit2.checkpoint import CheckpointError
from rlkit2.core import Actor, Agent, ConfigError, EnvSpec
from rlkit2.policy import POLICY_FILE, rebuild_agent, refuse_language_agent
from rlkit2.policy import load_policy as _load_policy_file
from rlkit2.registry import build_agent, get_agent
from rlkit2.user_data import as_replay, check_replay

__all__ = ["agent_config", "env_spec", "load_language_policy", "load_policy", "make", "make_env",
           "save_language_policy"]


# --------------------------------------------------------------------------- configs and specs


def agent_config(name: str, config: Any = None, **overrides: Any) -> Any:
    """The typed dataclass config of agent `name`: its defaults, then `config` (a dataclass or mapping),
    then `overrides` (nested dataclass fields as dicts, e.g. `model={"arch": "gemma2"}`).

    A key the dataclass does not have, or a value of the wrong type, raises `ConfigError` naming it
    (`rlkit2.config.to_config`).
    """
    from rlkit2.config import to_config

    cls = get_agent(name).config_cls
    other = config.get("name") if isinstance(config, Mapping) else getattr(config, "name", None)
    if other is not None and str(other) != name:  # a config of another agent passed by mistake
        raise ConfigError(f"config names agent '{other}' but make() was asked for '{name}'")
    return to_config({} if config is None else config, cls, overrides or None, where=f"agent '{name}' ({cls.__name__})")


def env_spec(env: Any) -> EnvSpec:
    """The `EnvSpec` (observation/action sizes and action bounds) of a Gymnasium env with flat Box spaces."""
    if isinstance(env, EnvSpec):
        return env
    from rlkit2.run.common import env_spec as _spec

    return _spec(env)


def make_env(config: Any, seed: int | None = None) -> Any:
    """A Gymnasium env from an rlkit2 env config: a Gymnasium id or D4RL name (`"hopper-medium-v2"`), a mapping
    with `kind` ("gym", "robosuite", "text"; e.g. the `env` a saved policy's info records) or a config object."""
    from omegaconf import DictConfig, OmegaConf

    from rlkit2.registry import make_env as _make_env

    if isinstance(config, str):
        config = {"kind": "gym", "id": config}
    if isinstance(config, Mapping) and not isinstance(config, DictConfig):
        node: Any = OmegaConf.create(dict(config))
        if node.get("kind", "gym") == "gym":  # fill the gym kind's defaults (max_episode_steps, kwargs, ...)
            from rlkit2.envs.gym_mujoco import GymEnvConfig

            node = OmegaConf.merge(OmegaConf.structured(GymEnvConfig), node)
        config = node
    return _make_env(config, seed)


# --------------------------------------------------------------------------- make


def make(name: str, env: Any = None, replay: Any = None, *, seed: int = 0, config: Any = None,
         tokenizer: Any = None, reward_fn: Callable[..., Any] | None = None, **overrides: Any) -> Agent:
    """Build agent `name` from its typed config, without Hydra.

    Control agents (`td3`, `sac`, `td3_bc`, `iql`, `qsarsa`, `qsarsa_ac2`, `bc`, `poir`, ...):
    `env` is a Gymnasium env with flat Box spaces or an `EnvSpec`; `replay` is what the learner samples
    from: a `TransitionReplay`, a dict of NumPy arrays (made into one), or any object with
    `sample(batch_size) -> Batch`. A dict holds either transitions (`observations, actions, rewards,
    next_observations, terminals`) or D4RL's layout (`observations, actions, rewards, terminals, timeouts`,
    rows in episode order; s' and a' are derived as the D4RL loader does, each timeout row dropped). Widths
    are checked against the spec and actions against its bounds (DataError naming the key and shape, or the
    count of rows out of bounds). The Q-sarsa agents need the dataset's next actions a' (their SARSA target
    is r + gamma * Q(s', a')): a dict may give `next_actions` (and `next_action_valid`, 0 where a' is
    unknown); otherwise they are derived from the row order (D4RL's layout, or transitions whose
    next_observations are the next row's observations) and the rows where it cannot be known are masked.
    Optional replay extras: `arrays()` (observation statistics when `normalize_obs`; IQL's reward scale),
    `with_next_actions = True` with `Batch.next_actions` (Q-sarsa), `generator` (a torch.Generator, saved in
    the learner's state for exact resumes).
    Returns `Agent(learner, policy, explorer)`: call `learner.step()` in your loop; `policy` is the greedy
    actor (`policy(obs) -> action`), `explorer` (online agents) the exploring one.

    Language agents (`ppo_lm`, `warp`, `jbond`): `env` is a text environment
    (`rlkit2.envs.text.make_text_env`), `reward_fn(documents, responses) -> Tensor[B]` overrides its reward.
    `model=` an already-built Hugging Face causal LM (an `AutoModelForCausalLM`, on the device and in the dtype
    it should train in) with `tokenizer=` its tokenizer replaces the model `agent.model` would build
    (`name_or_path`, `arch`, the sizes, `dtype` and `device` are then unused; `lora` and
    `gradient_checkpointing` apply to it). The policy trains that very module (in place); the reference is a
    frozen deep copy of it, or with LoRA (`agent.model.lora.r > 0`) the same module with its adapter disabled.
    A module that is not a causal LM, or a tokenizer with more tokens than the model's vocabulary, is refused
    with a ConfigError. (`model=` given as a mapping still overrides `agent.model`.)
    E.g. `rlkit2.make("ppo_lm", env, model=AutoModelForCausalLM.from_pretrained(p),
    tokenizer=AutoTokenizer.from_pretrained(p), lr=1e-5)`.
    Returns `Agent(learner, policy=greedy LMActor, explorer=the sampling LMActor the learner trains on)`;
    `learner.step()` is one RL iteration.

    `config` (dataclass or mapping) and keyword `overrides` set the agent's options (`agent_config`).
    """
    entry = get_agent(name)
    built = overrides.pop("model") if _is_module(overrides.get("model")) else None
    cfg = agent_config(name, config, **overrides)
    if built is not None and entry.family != "lm":
        raise ConfigError(f"model={type(built).__name__}: agent '{name}' builds its own networks; only language "
                          "agents (ppo_lm, warp, jbond) take an already-built model")
    if entry.family == "lm":
        if env is None:
            raise ConfigError(f"language agent '{name}' needs a text env (rlkit2.envs.text.make_text_env)")
        if reward_fn is not None:  # lists or tensors out, checked for one reward per response
            from rlkit2.rewards.base import CallableReward

            reward_fn = CallableReward(reward_fn)
        extra = {} if built is None else {"model": built}
        return build_agent(name, cfg, env, None, seed, tokenizer=tokenizer, reward_fn=reward_fn, **extra)
    if env is None:
        raise ConfigError(f"agent '{name}' needs `env`: a Gymnasium env or an rlkit2.EnvSpec")
    spec = env_spec(env)
    replay = as_replay(replay, seed, name, cfg, spec)
    check_replay(name, cfg, replay, spec)
    return build_agent(name, cfg, spec, replay, seed)


def _is_module(value: Any) -> bool:
    import torch

    return isinstance(value, torch.nn.Module)


# --------------------------------------------------------------------------- saved policies


def _policy_from_checkpoint(path: Path, trust: bool = False, device: Any = "cpu") -> tuple[Actor, dict[str, Any]]:
    found = ckpt.resume_state(path, trust=trust)
    if found is None:
        raise CheckpointError(f"no valid checkpoint in {path}")
    where, state = found
    cfg = state.get("config") if isinstance(state, dict) else None
    if not cfg or "agent" not in cfg or "env" not in cfg:
        raise CheckpointError(f"{where} does not record its config (agent, env), so its policy cannot be rebuilt; "
                              f"load the run's {POLICY_FILE} instead")
    from omegaconf import OmegaConf

    from rlkit2.registry import make_env

    name = str(cfg["agent"]["name"])
    refuse_language_agent(name, str(where))  # before building its env: a text env is not needed to say no
    env = make_env(OmegaConf.create(cfg["env"]), int(cfg.get("seed", 0)))
    try:
        spec = env_spec(env)
    finally:
        env.close()
    agent = rebuild_agent(name, cfg["agent"], spec, state["learner"], int(cfg.get("seed", 0)), str(where), device)
    info = {"agent": name, "env": cfg["env"], "spec": dataclasses.asdict(spec), "step": int(state.get("step", 0)),
            "checkpoint": str(where)}
    return agent.policy, info


def load_policy(path: str | os.PathLike[str], *, with_info: bool = False, trust: bool = False,
                device: Any = "cpu") -> Any:
    """A trained control policy, `policy(observation) -> action`, with its observation normalisation.

    `path`: a run directory (its `policy.pt`, else its latest valid checkpoint), a `policy.pt` file, a
    checkpoints directory or one checkpoint file. No training state or Hydra is needed to use it.
    `with_info=True` returns `(policy, info)` with the agent name, env config and training step. The policy runs
    on `device` (the CPU unless asked, whatever device trained it); actions come back as NumPy arrays.
    Files are verified against their checksum and loaded weights-only; `trust=True` also accepts the older
    pickled formats, which runs code stored in the file (only for files you made yourself).
    """
    p = Path(path)
    if p.is_dir() and (p / POLICY_FILE).is_file():
        return _load_policy_file(p, with_info=with_info, trust=trust, device=device)
    if p.is_file():
        try:
            return _load_policy_file(p, with_info=with_info, trust=trust, device=device)
        except CheckpointError as policy_error:
            try:
                policy, info = _policy_from_checkpoint(p, trust, device)
            except CheckpointError as checkpoint_error:  # say both: which one the file was meant to be is unknown
                raise CheckpointError(f"cannot load a policy from {p}: as a policy file: {policy_error}; as a "
                                      f"checkpoint: {checkpoint_error}") from None
            return (policy, info) if with_info else policy
    if p.is_dir():
        source = p / "checkpoints" if (p / "checkpoints").is_dir() else p
        policy, info = _policy_from_checkpoint(source, trust, device)
        return (policy, info) if with_info else policy
    raise CheckpointError(f"no saved policy at {path}: expected a run dir, {POLICY_FILE}, or a checkpoint")


# --------------------------------------------------------------------------- language policies


def _language_model(model: Any) -> Any:
    """The Hugging Face causal LM inside a learner, a PolicyWithValue, or the model itself."""
    for attr in ("policy", "lm"):
        inner = getattr(model, attr, None)
        if inner is not None and not callable(getattr(model, "save_pretrained", None)):
            return _language_model(inner)
    if not callable(getattr(model, "save_pretrained", None)):
        raise ConfigError(f"{type(model).__name__} holds no Hugging Face model (nothing with save_pretrained)")
    return model


def save_language_policy(model: Any, directory: str | os.PathLike[str], tokenizer: Any = None) -> Path:
    """Save a language policy as a plain Hugging Face model folder (`save_pretrained`: config, safetensors
    weights, tokenizer), loadable with `transformers.AutoModelForCausalLM.from_pretrained` alone.

    `model`: a language learner (ppo_lm, warp, jbond), a `PolicyWithValue` (the value head is training
    state and is dropped) or a causal LM; LoRA adapters are merged into (a copy of) the base weights. The
    tokenizer defaults to the learner's.
    """
    directory = Path(directory)
    lm = _language_model(model)
    if callable(getattr(lm, "merge_and_unload", None)):  # LoRA: the adapters merged into a copy of the base weights
        import copy

        lm = copy.deepcopy(lm).merge_and_unload()
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    directory.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def load_language_policy(directory: str | os.PathLike[str]) -> tuple[Any, Any]:
    """(causal LM, tokenizer) from a folder written by `save_language_policy` (plain transformers calls)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = Path(directory)
    if not (d / "config.json").is_file():
        raise CheckpointError(f"{d} is not a Hugging Face model folder (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(d) if (d / "tokenizer_config.json").is_file() else None
    return model.eval(), tokenizer
