"""What the offline evidence grid runs: its datasets, (agent, dataset, seed) runs, and the Hydra multiruns
that cover them (`experiments/offline/grid.py` runs them; `grid_results.py` records what they produced)."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "grid.json"

AGENTS: tuple[str, ...] = ("qsarsa_ac", "qsarsa_ac2", "td3_bc", "iql", "offline_bc", "cql")
HOPPER_ONLY: frozenset[str] = frozenset({"cql"})
DATASETS: tuple[str, ...] = ("hopper-v5-medium", "hopper-v5-medium-replay", "hopper-v5-medium-expert",
                             "walker2d-v5-medium", "walker2d-v5-medium-replay",
                             "halfcheetah-v5-medium", "halfcheetah-v5-medium-replay")
SEEDS, SEEDS_ON = 3, {"hopper-v5-medium": 5}
UPDATES, EVAL_EVERY, EVAL_EPISODES, LAST_EVALS = 100_000, 10_000, 10, 3
SCORE_KEY, SCORE_V5_KEY = "eval/normalized_score", "eval/normalized_score_v5"
SCHEMA = 1


# --------------------------------------------------------------------------- what is run


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset of the grid: `label` names it in run dirs and tables; `env_id` is what `env.id` gets (a dataset
    name or a Gymnasium id); `path` is set when the file was given by path (`env.dataset=<path>`)."""

    label: str
    env_id: str
    path: str | None = None

    @property
    def family(self) -> str | None:
        from rlkit2.data.names import env_family, resolve_env_id

        return env_family(resolve_env_id(self.env_id)[0])


@dataclasses.dataclass(frozen=True, order=True)
class Run:
    agent: str
    dataset: str  # Dataset.label
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.agent, self.dataset, self.seed)

    def dir(self, runs_dir: Path) -> Path:
        return runs_dir / self.dataset / self.agent / f"s{self.seed}"


@dataclasses.dataclass
class GridConfig:
    agents: list[str]
    datasets: list[Dataset]
    seeds: int | None = None  # None: SEEDS, SEEDS_ON
    updates: int = UPDATES
    eval_every: int = EVAL_EVERY
    eval_episodes: int = EVAL_EPISODES
    jobs: int = 1
    runs_dir: Path = REPO / "outputs" / "offline-grid"
    results: Path = RESULTS
    data_dir: str | None = None
    overrides: list[str] = dataclasses.field(default_factory=list)
    references: bool = True
    # (k, n): this sitting runs the k-th of n disjoint shares of the grid (one per process or machine, all
    # writing to the same results JSON); (0, 1) runs it all
    shard: tuple[int, int] = (0, 1)

    def seeds_for(self, dataset: str) -> int:
        return self.seeds if self.seeds is not None else SEEDS_ON.get(dataset, SEEDS)

    @property
    def budget(self) -> dict[str, Any]:
        """What makes two runs comparable: one results JSON holds one budget."""
        return {"updates": self.updates, "eval_every": self.eval_every, "eval_episodes": self.eval_episodes,
                "last_evals": LAST_EVALS, "score_key": SCORE_KEY, "overrides": list(self.overrides)}


def dataset_ref(spec: str) -> Dataset:
    """A dataset name (`hopper-v5-medium`, D4RL's `hopper-medium-v2`) or a path to a D4RL-format file.

    A file's label is its stem; its env.id is the stem when that is a dataset name, else the Gymnasium id of
    its metadata `env_id` (a file without either is refused: the env could not be chosen)."""
    from rlkit2.data.d4rl import generation_metadata
    from rlkit2.data.names import parse_d4rl_name, parse_generated_name

    p = Path(spec).expanduser()
    if spec.endswith((".hdf5", ".h5")) or os.sep in spec:
        if not p.is_file():
            raise SystemExit(f"dataset file {p} not found")
        stem = p.stem
        if parse_generated_name(stem) or parse_d4rl_name(stem):
            return Dataset(stem, stem, str(p.resolve()))
        env_id = generation_metadata(p).get("env_id") or raw_metadata(p).get("env_id")
        if not env_id:
            raise SystemExit(f"{p}: its name is not a dataset name and its metadata has no env_id; rename it "
                             "<env>-v5-<kind>.hdf5 or add metadata/env_id")
        return Dataset(stem, str(env_id), str(p.resolve()))
    if not (parse_generated_name(spec) or parse_d4rl_name(spec)):
        from rlkit2.data.names import dataset_name_help

        raise SystemExit(f"'{spec}' is neither a dataset name nor an .hdf5 path. {dataset_name_help()}")
    return Dataset(spec, spec)


def raw_metadata(path: Path) -> dict[str, Any]:
    """`metadata/*` of a D4RL-format file rlkit2 did not generate (`generation_metadata` gives {} for those)."""
    from rlkit2.data.d4rl import read_d4rl

    return dict(read_d4rl(path).metadata)


@contextmanager
def data_dir_env(data_dir: str | None) -> Iterator[None]:
    """RLKIT2_DATA_DIR set to `data_dir` for the block (names resolve there, as in the training subprocesses)."""
    if not data_dir:
        yield
        return
    old = os.environ.get("RLKIT2_DATA_DIR")
    os.environ["RLKIT2_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RLKIT2_DATA_DIR", None)
        else:
            os.environ["RLKIT2_DATA_DIR"] = old


def dataset_file(ds: Dataset, data_dir: str | None) -> Path:
    if ds.path:
        return Path(ds.path)
    from rlkit2.data.names import resolve_dataset_path

    with data_dir_env(data_dir):
        return resolve_dataset_path(ds.env_id)


def plan(cfg: GridConfig) -> list[Run]:
    """Every (agent, dataset, seed) of the grid, or of its shard; hopper-only agents skip the other families.

    Shard k of n holds every n-th run of the whole grid's order, starting at the k-th: the shares do not
    depend on what is recorded already, so sittings started at different times never pick the same run."""
    runs: list[Run] = []
    for ds in cfg.datasets:
        for agent in cfg.agents:
            if agent in HOPPER_ONLY and ds.family != "hopper":
                continue
            runs.extend(Run(agent, ds.label, s) for s in range(cfg.seeds_for(ds.label)))
    k, n = cfg.shard
    return runs[k::n]


@dataclasses.dataclass(frozen=True)
class Block:
    """One Hydra multirun: agents x datasets x seeds, all pending."""

    agents: tuple[str, ...]
    datasets: tuple[Dataset, ...]
    seeds: tuple[int, ...]

    @property
    def runs(self) -> list[Run]:
        return [Run(a, d.label, s) for d in self.datasets for a in self.agents for s in self.seeds]


def blocks(pending: Sequence[Run], datasets: Sequence[Dataset]) -> list[Block]:
    """Cover the pending runs exactly with few Cartesian blocks: per dataset, agents sharing a seed set go
    together; datasets (named, not given by path) with the same agents and seeds are merged."""
    by_label = {d.label: d for d in datasets}
    seeds: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for r in pending:
        seeds[r.dataset][r.agent].add(r.seed)
    order = {d.label: i for i, d in enumerate(datasets)}
    merged: dict[tuple[Any, ...], list[Dataset]] = {}
    for label in sorted(seeds, key=order.__getitem__):
        agents_by_seeds: dict[tuple[int, ...], list[str]] = defaultdict(list)
        for agent, s in seeds[label].items():
            agents_by_seeds[tuple(sorted(s))].append(agent)
        for seed_set, agents in agents_by_seeds.items():
            ds = by_label[label]
            key = (tuple(sorted(agents)), seed_set, ds.label if ds.path else None)
            merged.setdefault(key, []).append(ds)
    agent_order = {a: i for i, a in enumerate(AGENTS)}
    out = []
    for (agents, seed_set, _), dss in merged.items():
        out.append(Block(tuple(sorted(agents, key=lambda a: agent_order.get(a, len(AGENTS)))), tuple(dss), seed_set))
    return out


def _hydra_value(s: str) -> str:
    if re.fullmatch(r"[\w./+-]+", s):
        return s
    if "'" in s or "\\" in s:
        raise SystemExit(f"cannot pass {s!r} to Hydra: rename it without quotes or backslashes")
    return f"'{s}'"


def train_command() -> list[str]:
    """The `rlkit2-train` script of this interpreter's environment (else `python -m rlkit2.train`)."""
    script = Path(sys.executable).with_name("rlkit2-train")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rlkit2.train"]


def command(block: Block, cfg: GridConfig) -> list[str]:
    """The `rlkit2-train -m` command that runs (or resumes) every run of `block`."""
    ds = block.datasets
    args = [*train_command(), "-m", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={cfg.jobs}",
            "agent=" + ",".join(block.agents), "env.id=" + ",".join(_hydra_value(d.env_id) for d in ds)]
    if ds[0].path:  # a file given by path: a block of its own
        args.append(f"env.dataset={_hydra_value(ds[0].path)}")
    label = "${env.id}" if all(d.label == d.env_id for d in ds) and not ds[0].path else ds[0].label
    args += ["seed=" + ",".join(str(s) for s in block.seeds),
             f"trainer.total_steps={cfg.updates}", f"trainer.eval_every={cfg.eval_every}",
             f"trainer.eval_episodes={cfg.eval_episodes}", f"trainer.log_every={min(1000, cfg.eval_every)}",
             f"trainer.checkpoint_every={cfg.eval_every}", "trainer.threads=1", "trainer.progress=false",
             "trainer.plot=false", "logger.console=false", "resume=true",
             f"hydra.sweep.dir={_hydra_value(str(cfg.runs_dir.resolve()))}",
             f"hydra.sweep.subdir={label}/${{agent.name}}/s${{seed}}", *cfg.overrides]
    return args
