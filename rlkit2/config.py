"""Typed top-level configuration, registered in Hydra's ConfigStore.

Each config group's YAML (`conf/agent/td3.yaml`, ...) starts from a dataclass
schema stored here or by its agent/env module (`<name>_schema`), so Hydra runs in
struct mode: a misspelt key is an error that names it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from rlkit2.validation import Fields, ValidatedConfig


@dataclasses.dataclass
class TrainerConfig(ValidatedConfig):
    total_steps: int = 100_000  # learner updates (offline) or env steps (online)
    eval_every: int = 10_000  # 0 (or eval_episodes=0): no evaluation
    eval_episodes: int = 10
    log_every: int = 1_000
    checkpoint_every: int = 10_000
    keep_checkpoints: int = 2
    learning_starts: int = 5_000  # online: random-action steps before updates begin
    updates_per_step: int = 1  # online: learner updates per env step
    nan_policy: str = "stop"  # "stop": save last good checkpoint and raise; "skip": drop the update
    device: str = "cpu"
    # "auto": the physical cores divided among the jobs that run at once (a joblib sweep's n_jobs, torchrun's
    # local world size), so parallel jobs never oversubscribe the CPU; or a number of torch threads
    threads: str = "auto"
    compile: bool = False  # torch.compile the update (eager fallback on failure)
    progress: bool = True
    distributed: bool = False
    plot: bool = True  # learning-curve PNG in the run dir at the end

    config_prefix = "trainer"

    @classmethod
    def check(cls, f: Fields) -> None:
        f.count("total_steps", "log_every", "checkpoint_every", "keep_checkpoints")
        f.count("eval_every", "eval_episodes", what="0: no evaluation", minimum=0)
        f.budget("learning_starts")
        f.count("updates_per_step", what="learner updates per env step")
        f.choice("nan_policy", ("stop", "skip"))
        f.threads("threads")


@dataclasses.dataclass
class LoggerConfig:
    console: bool = True
    jsonl: bool = True
    wandb: bool = False
    project: str = "rlkit2"
    entity: str | None = None
    group: str | None = None  # default: the multirun sweep dir, so a sweep shares one group
    mode: str | None = None  # "online" | "offline" | "disabled"; WANDB_MODE also works
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunConfig:
    agent: Any = MISSING
    env: Any = MISSING
    logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    seed: int = 0
    # "" starts fresh; "true"/"auto" resumes from this run dir's checkpoints (set hydra.run.dir to
    # the old dir); any other value is a run dir or checkpoint file to resume from.
    resume: str = ""
    # Load checkpoints that hold pickled Python objects (rlkit2 < 0.2): unpickling runs any code the file
    # carries, so only for files you made yourself; convert them instead with `python -m rlkit2.checkpoint convert`.
    trust_pickle: bool = False
    name: str = ""
    # LM families: the reward config group (conf/reward/, `reward=entailment`); the text env uses it
    # in place of env.reward when set.
    reward: Any = None


def store(name: str, node: Any, group: str | None = None) -> None:
    ConfigStore.instance().store(group=group, name=name, node=node)


store("base_config", RunConfig)
store("console_schema", LoggerConfig, group="logger")
