"""`GenerationConfig`: how the generated datasets of one environment family are made (budgets, seeds, where
the work dir and the files live, which behaviour policies), and the small helpers the generation modules share.

The generation itself: `rlkit2.data.behaviour` (behaviour policies: SAC trained here or shipped),
`rlkit2.data.collect` (rollouts recorded in resumable chunks), `rlkit2.data.generate` (the dataset files).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError
from rlkit2.data.names import D4RL_ENVS, rlkit2_data_dir

BEHAVIOUR_SOURCES: tuple[str, ...] = ("auto", "shipped", "train")


@dataclasses.dataclass
class GenerationConfig:
    """How datasets for one environment family are made. Scaled-down runs are first-class:
    e.g. transitions=100_000, train_steps=100_000 fits a 2-core machine."""

    env: str  # "hopper" | "halfcheetah" | "walker2d"
    transitions: int = 1_000_000  # rows of random / medium / expert
    train_steps: int = 1_000_000  # SAC env steps for the behaviour-policy run
    seed: int = 0
    eval_every: int = 5_000  # policy snapshot + evaluation every this many env steps
    eval_episodes: int = 5
    ref_episodes: int = 10  # greedy episodes to measure the expert / medium return
    learning_starts: int = 5_000
    checkpoint_every: int = 10_000
    max_episode_steps: int = 1_000
    # collection is saved every this many episodes (resume granularity; the data depend on it)
    chunk_episodes: int = 64
    workers: int = 0  # processes collecting chunks at once (0: one per CPU); the data do not depend on it
    threads: int = 1
    hidden: tuple[int, ...] = (256, 256)  # SAC's MLP widths; (64, 64) is ~3.5x cheaper an update on a CPU
    data_dir: str = ""  # default: rlkit2's dataset cache (RLKIT2_DATA_DIR)
    progress: bool = True
    # behaviour policies: "auto" = the shipped ones (rlkit2/data/policies) when the env has any, else SAC
    # trained here; "shipped" = shipped only; "train" = train SAC here even when shipped ones exist
    behaviour: str = "auto"
    policies_dir: str = ""  # default: $RLKIT2_POLICIES_DIR or the package's rlkit2/data/policies
    work_name: str = ""  # the work dir's folder name under <root>/work (default: from env, seed, budget, widths)

    def __post_init__(self) -> None:
        if self.env not in D4RL_ENVS:
            raise ConfigError(f"env='{self.env}': expected one of {', '.join(D4RL_ENVS)}")
        if self.behaviour not in BEHAVIOUR_SOURCES:
            raise ConfigError(f"behaviour='{self.behaviour}': expected one of {', '.join(BEHAVIOUR_SOURCES)}")
        for name in ("transitions", "train_steps", "eval_every", "eval_episodes", "ref_episodes", "chunk_episodes"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be positive")
        if self.workers < 0:
            raise ConfigError(f"workers={self.workers}: must be >= 0 (0: one per CPU)")
        if self.eval_every > self.train_steps:
            raise ConfigError(f"eval_every={self.eval_every} exceeds train_steps={self.train_steps}: no snapshot")

    @property
    def gym_id(self) -> str:
        return D4RL_ENVS[self.env]

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else rlkit2_data_dir()

    @property
    def work_dir(self) -> Path:
        """Everything reusable for this (env, seed, training budget): SAC run, snapshots, collected chunks."""
        if self.work_name:
            return self.root / "work" / self.work_name
        width = "" if tuple(self.hidden) == (256, 256) else "-h" + "x".join(str(h) for h in self.hidden)
        return self.root / "work" / f"{self.env}-seed{self.seed}-train{self.train_steps}{width}"


def progress_log(cfg: GenerationConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[rlkit2-data] {msg}", flush=True)


def env_config(cfg: GenerationConfig) -> Any:
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    return GymEnvConfig(id=cfg.gym_id, max_episode_steps=cfg.max_episode_steps)


def atomic_json(path: Path, obj: Any) -> None:
    ckpt.atomic_write_bytes(path, json.dumps(obj, indent=1).encode())
