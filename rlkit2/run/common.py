"""Small pieces every runner phase shares: config conversion, env specs, run-level checks, resume sources."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlkit2 import validation
from rlkit2.config import TrainerConfig
from rlkit2.core import ConfigError
from rlkit2.logging import JsonlLogger, Logger
from rlkit2.registry import EnvSpec, get_agent
from rlkit2.rundir import resuming

EVAL_SEED_OFFSET = 10_000  # evaluation episodes are seeded apart from training episodes
EVAL_SEED_STRIDE = 1_009  # ... and apart from other training seeds' (up to this many episodes an evaluation)


def eval_seed(seed: int) -> int:
    """The first evaluation-episode seed of training seed `seed` (episode i uses eval_seed(seed) + i): every
    training seed is evaluated on its own episodes, so n seeds x k episodes are n*k distinct episodes."""
    return EVAL_SEED_OFFSET + EVAL_SEED_STRIDE * int(seed)


def resolve_device(trainer: Any) -> torch.device:
    """`trainer.device` (cpu, cuda, cuda:N, mps) as the torch device a control or imitation run trains on.

    A device this machine lacks is a ConfigError naming what is missing (the agents themselves run on any of
    them). Under torchrun (`trainer.distributed`) a bare `cuda` means this rank's GPU, `cuda:$LOCAL_RANK`."""
    name = str(getattr(trainer, "device", "cpu") or "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"trainer.device={name}: not a torch device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.device={name}: no CUDA device is available on this machine "
                              "(torch.cuda.is_available() is false); use trainer.device=cpu here")
        # a bare "cuda" gets named (torch.cuda.set_device wants an index): this rank's GPU under torchrun, else
        # the current device
        index = device.index
        if index is None and bool(getattr(trainer, "distributed", False)):
            index = int(os.environ.get("LOCAL_RANK", 0))
        elif index is None:
            index = torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ConfigError(f"trainer.device={name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"trainer.device={name}: no MPS device is available on this machine "
                              "(torch.backends.mps.is_available() is false); use trainer.device=cpu here")
    elif device.type != "cpu":
        raise ConfigError(f"trainer.device={name}: control and imitation runs take cpu, cuda, cuda:N or mps")
    return device


def env_spec(env: Any) -> EnvSpec:
    obs_space, act_space = env.observation_space, env.action_space
    if len(obs_space.shape) != 1 or len(act_space.shape) != 1:
        raise ConfigError(f"control agents need flat Box spaces; got {obs_space} and {act_space}")
    high = float(np.max(act_space.high))
    return EnvSpec(int(obs_space.shape[0]), int(act_space.shape[0]), float(np.min(act_space.low)), high)


def evaluating(trainer: Any) -> bool:
    """Whether the run evaluates at all (`trainer.eval_every=0` or `eval_episodes=0` switch it off)."""
    return int(trainer.eval_every) > 0 and int(trainer.eval_episodes) > 0


def validate_trainer(trainer: Any, prefix: str = "trainer") -> None:
    """`trainer.*` ranges (a TrainerConfig, mapping or OmegaConf node)."""
    TrainerConfig.check(validation.Fields(trainer, prefix))


def validate_run(cfg: Any) -> None:
    """Every range check of a composed run config (`rlkit2-train`), before anything is built or loaded:
    `seed`, `trainer.*`, `env.*`, `agent.*` (by the agent's typed config); warns about oversubscribed threads."""
    top = validation.Fields(cfg, "")
    if top.has("seed"):
        seed = top.get("seed")
        if not validation.is_int(seed) or seed < 0:
            raise validation.fail("seed", seed, "seeds must be integers >= 0 (Gymnasium, NumPy and torch refuse "
                                  "negative ones)")
    if top.has("init_from") and str(top.get("init_from") or ""):
        init = str(top.get("init_from"))
        resume = str(top.get("resume") or "").strip().lower() if top.has("resume") else ""
        if not resuming(resume) and not Path(init).is_file():  # resuming: the run's own checkpoints come first
            raise validation.fail("init_from", init, "must be a checkpoint file (a run dir's checkpoints/step_*.pt)")
        if resume not in ("true", "auto", "1") and resuming(resume):
            raise validation.fail("init_from", init, "starts a new run: it cannot be combined with "
                                  "resume=<another run>")
    validate_trainer(cfg.trainer)
    if top.has("env") and top.get("env") is not None:
        validation.validate_env(cfg.env)
    validation.validate_agent(cfg.agent, get_agent(str(cfg.agent.name)).config_cls)
    validation.warn_threads(cfg.trainer.threads)


def validate_common(agent_cfg: Any, trainer: Any, replay_size: int | None) -> None:
    """Refuse out-of-range values before any training starts (the ranges live in rlkit2.validation)."""
    validation.validate_agent(agent_cfg)
    validate_trainer(trainer)
    bs = getattr(agent_cfg, "batch_size", None)
    if bs is not None and replay_size is not None and bs > replay_size:
        raise ConfigError(f"agent.batch_size={bs} is larger than the dataset ({replay_size} transitions)")


def config_diff(state: dict[str, Any], cfg: Any, error: Exception) -> str:
    """`agent.<key>: checkpoint X, now Y` for each agent option that changed since `state` was written
    (falls back to the first line of `error` when the checkpoint holds no config)."""
    saved = (state.get("config") or {}).get("agent")
    now = OmegaConf.to_container(cfg.agent, resolve=True) if isinstance(cfg.agent, DictConfig) else None
    if isinstance(saved, dict) and isinstance(now, dict):
        diff = [f"agent.{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
                for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        if diff:
            return "; ".join(diff)
    return str(error).strip().splitlines()[0]


def truncate_metrics(logger: Logger, step: int) -> None:
    """Drop the metrics.jsonl rows logged after `step` (a resume from `step` logs them again)."""
    for lg in getattr(logger, "loggers", [logger]):
        if isinstance(lg, JsonlLogger):
            lg.truncate_after(step)


def resolve_resume(resume: str, run_dir: Path) -> Path | None:
    """`resume` -> the checkpoint directory or file to resume from (None: start fresh)."""
    r = str(resume or "").strip()
    if not resuming(r):
        return None  # an earlier run's files were set aside at start (rlkit2.rundir)
    if r.lower() in ("true", "auto", "1"):
        return run_dir / "checkpoints"
    p = Path(r)
    if p.is_file():
        return p
    if (p / "checkpoints").is_dir():
        return p / "checkpoints"
    if p.is_dir():
        return p
    raise ConfigError(f"resume='{resume}': no such run dir or checkpoint")


def crossed(prev: int, now: int, every: int) -> bool:
    """Whether a step counter moving from `prev` to `now` passed a multiple of `every` (0: never)."""
    return every > 0 and now // every != prev // every
