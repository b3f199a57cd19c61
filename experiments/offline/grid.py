"""The offline-RL evidence grid: every agent on every dataset over several seeds, as ordinary `rlkit2-train` runs.

    python -m experiments.offline.grid --dry-run                 # print the Hydra multirun commands
    python -m experiments.offline.grid --jobs 2                  # run (or resume) the whole grid
    python -m experiments.offline.grid --agents td3_bc iql --datasets hopper-v5-medium --seeds 2 --updates 20000
    python -m experiments.offline.report                         # tables + plots from the results JSON

The grid (defaults):

- agents: qsarsa_ac, qsarsa_ac2, td3_bc, iql, offline_bc (the BC row), and cql on the hopper datasets only;
- datasets: {hopper, walker2d, halfcheetah}-v5-{medium, medium-replay} and hopper-v5-medium-expert (the
  datasets `rlkit2-data make` generates; D4RL's own files work by their D4RL names, and any D4RL-format
  file by its path);
- seeds: 3 per (agent, dataset), 5 on hopper-v5-medium (`--seeds N`: N everywhere);
- 100,000 updates, 10 evaluation episodes every 10,000 updates; a run's score is the mean of its last three
  evaluations of `eval/normalized_score` (D4RL's reference returns: `rlkit2.data.scores`).

Runs are launched as Hydra multiruns (`rlkit2-train -m hydra/launcher=joblib hydra.launcher.n_jobs=<jobs>
... trainer.threads=1 resume=true`), one run dir per (agent, dataset, seed): `<runs-dir>/<dataset>/<agent>/s<seed>`.
Pending runs are grouped into as few multiruns as cover them exactly (Hydra sweeps are Cartesian products).
`resume=true` makes a killed grid continue each run from its last checkpoint (every evaluation). Stop a grid
with Ctrl-C (or by killing its process group: the multirun's joblib workers are its children).

Each finished run's row (agent, dataset, seed, score, evaluations, wall time, updates/s, machine, library
versions) is added to the results JSON (`experiments/offline/results/grid.json`), written atomically; a run
already there is never launched again, and one finished on disk but missing from the JSON is recorded
without training. The JSON also holds two reference rows per dataset: the zero-action policy (evaluated here,
`--eval-episodes` episodes per seed, scored with the runs' reference returns) and the behaviour policy (the
dataset file's `policy_return` metadata, scored the same way). One results JSON holds one budget: a run
with other `--updates`/`--eval-every`/`--eval-episodes`/`--override`s must use another `--results` file.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

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
POLL_S = 60.0  # while a multirun runs, its finished runs are recorded this often


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
        env_id = generation_metadata(p).get("env_id") or _raw_metadata(p).get("env_id")
        if not env_id:
            raise SystemExit(f"{p}: its name is not a dataset name and its metadata has no env_id; rename it "
                             "<env>-v5-<kind>.hdf5 or add metadata/env_id")
        return Dataset(stem, str(env_id), str(p.resolve()))
    if not (parse_generated_name(spec) or parse_d4rl_name(spec)):
        from rlkit2.data.names import dataset_name_help

        raise SystemExit(f"'{spec}' is neither a dataset name nor an .hdf5 path. {dataset_name_help()}")
    return Dataset(spec, spec)


def _raw_metadata(path: Path) -> dict[str, Any]:
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
    """Every (agent, dataset, seed) of the grid; hopper-only agents skip the other families."""
    runs: list[Run] = []
    for ds in cfg.datasets:
        for agent in cfg.agents:
            if agent in HOPPER_ONLY and ds.family != "hopper":
                continue
            runs.extend(Run(agent, ds.label, s) for s in range(cfg.seeds_for(ds.label)))
    return runs


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


# --------------------------------------------------------------------------- a finished run's row


@functools.cache
def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


@functools.cache
def versions() -> dict[str, str]:
    import gymnasium
    import hydra
    import mujoco
    import torch

    import rlkit2

    out = {"rlkit2": rlkit2.__version__, "torch": torch.__version__, "numpy": np.__version__,
           "gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__, "hydra": hydra.__version__}
    try:
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                    text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and bool(np.isfinite(v))


def run_row(run: Run, cfg: GridConfig) -> dict[str, Any] | None:
    """The result row of a finished run (an evaluation logged at step `updates`, and its policy saved), else None.

    wall_s is the training loop's time, rebuilt from the logged throughput windows (`time/steps_per_s` over each
    `log_every` stretch): it spans every sitting of a resumed run, counts the evaluations inside the windows,
    and leaves out setup and stretches redone after a kill. updates_per_s = updates / wall_s.
    """
    from rlkit2.logging import read_metrics

    d = run.dir(cfg.runs_dir)
    if not (d / "metrics.jsonl").is_file() or not (d / "policy.pt").is_file():
        return None
    rows = read_metrics(d)
    evals = sorted((int(r["step"]), float(r[SCORE_KEY])) for r in rows if _is_num(r.get(SCORE_KEY)))
    if not evals or evals[-1][0] < cfg.updates:
        return None
    v5 = sorted((int(r["step"]), float(r[SCORE_V5_KEY])) for r in rows if _is_num(r.get(SCORE_V5_KEY)))
    last = evals[-LAST_EVALS:]
    wall, prev = 0.0, 0
    for r in sorted((r for r in rows if _is_num(r.get("time/steps_per_s"))), key=lambda r: int(r["step"])):
        wall += (int(r["step"]) - prev) / float(r["time/steps_per_s"])
        prev = int(r["step"])
    return {
        "agent": run.agent, "dataset": run.dataset, "seed": run.seed,
        "score": float(np.mean([s for _, s in last])),
        "score_v5": float(np.mean([s for _, s in v5[-LAST_EVALS:]])) if v5 else None,
        "evals": [[step, score] for step, score in evals], "score_evals": len(last),
        "updates": evals[-1][0], "wall_s": wall if wall > 0 else None,
        "updates_per_s": evals[-1][0] / wall if wall > 0 else None,
        "run_dir": str(d), "recorded": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": dict(machine()), "versions": dict(versions()), "data": data_provenance(run, cfg),
    }


DATA_KEYS = ("transitions", "seed", "behaviour_policies_sha256", "chunk_episodes")


def data_provenance(run: Run, cfg: GridConfig) -> dict[str, Any]:
    """Which collection of the dataset a run trained on: the generation settings that fix its rows
    (`chunk_episodes` None: made by the earlier collection, chunked by rows, before December 2026)."""
    from rlkit2.data.d4rl import generation_metadata

    ds = next((d for d in cfg.datasets if d.label == run.dataset), None)
    try:
        md = generation_metadata(dataset_file(ds, cfg.data_dir)) if ds is not None else {}
    except Exception as e:  # noqa: BLE001 - provenance is best effort: the row still counts
        return {"error": f"{type(e).__name__}: {e}"}
    return {k: md.get(k) for k in DATA_KEYS} if md else {}


# --------------------------------------------------------------------------- reference rows


def zero_action_reference(ds: Dataset, cfg: GridConfig, seeds: int) -> dict[str, Any]:
    """The zero-action policy in the dataset's env: `eval_episodes` episodes per seed (seeded as the runs'
    evaluations are), each seed's mean normalised score one sample, scored with the runs' reference returns."""
    from rlkit2.envs.gym_mujoco import GymEnvConfig, make_gym_env

    from rlkit2.data.d4rl import generation_metadata
    from rlkit2.data.references import zero_action_metrics
    from rlkit2.run.common import eval_seed

    path = dataset_file(ds, cfg.data_dir)
    md = generation_metadata(path)
    env_cfg = GymEnvConfig(id=ds.env_id, dataset=str(path))
    scores, scores_v5, returns = [], [], []
    for seed in range(seeds):
        env = make_gym_env(env_cfg, seed=eval_seed(seed))
        m = zero_action_metrics(env, env_cfg, md, cfg.eval_episodes, eval_seed(seed))
        env.close()
        scores.append(m.get(SCORE_KEY))
        scores_v5.append(m.get(SCORE_V5_KEY))
        returns.append(m["eval/return"])
    return {"dataset": ds.label, "kind": "zero_action", "scores": scores,
            "scores_v5": scores_v5 if all(s is not None for s in scores_v5) else None, "returns": returns,
            "seeds": seeds, "episodes": cfg.eval_episodes,
            "note": f"a policy that outputs zeros; {cfg.eval_episodes} episodes per seed"}


def dataset_reference(ds: Dataset, cfg: GridConfig) -> dict[str, Any]:
    """The dataset's own mean episode return (the behaviour policy as it collected the data), normalised with
    the runs' reference returns."""
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    from rlkit2.data.d4rl import episode_returns, generation_metadata, read_d4rl
    from rlkit2.data.references import DATASET_NOTE
    from rlkit2.data.scores import score_functions

    path = dataset_file(ds, cfg.data_dir)
    metadata = generation_metadata(path)
    recorded = (metadata or {}).get("dataset_mean_episode_return")
    if isinstance(recorded, int | float):  # a generated file says it: no need to read its 1M rows
        ret = float(recorded)
    else:
        arrays = read_d4rl(path).arrays
        ret = float(np.mean(episode_returns(arrays["rewards"], arrays["terminals"], arrays["timeouts"])))
    fns = score_functions(GymEnvConfig(id=ds.env_id, dataset=str(path)), metadata)
    v5 = fns.get(SCORE_V5_KEY)
    return {"dataset": ds.label, "kind": "dataset", "score": fns[SCORE_KEY](ret) if SCORE_KEY in fns else None,
            "score_v5": v5(ret) if v5 else None, "return": ret, "note": DATASET_NOTE}


def behaviour_reference(ds: Dataset, cfg: GridConfig) -> dict[str, Any] | None:
    """The behaviour policy's return from the file's metadata (`rlkit2.data.references.behaviour_return`),
    normalised with the runs' reference returns. None for a file without that metadata (D4RL's own files)."""
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    from rlkit2.data.d4rl import generation_metadata
    from rlkit2.data.references import behaviour_return
    from rlkit2.data.scores import score_functions

    path = dataset_file(ds, cfg.data_dir)
    md = generation_metadata(path) or _raw_metadata(path)
    found = behaviour_return(md)
    if found is None:
        return None
    ret, what = found
    fns = score_functions(GymEnvConfig(id=ds.env_id, dataset=str(path)), md)
    if SCORE_KEY not in fns:
        return None
    v5 = fns.get(SCORE_V5_KEY)
    return {"dataset": ds.label, "kind": "behaviour", "score": fns[SCORE_KEY](ret),
            "score_v5": v5(ret) if v5 else None, "policy_return": ret,
            "policy_return_std": md.get("policy_return_std"), "note": f"metadata: {what}"}


# --------------------------------------------------------------------------- the results JSON


def load_results(path: Path, budget: dict[str, Any]) -> dict[str, Any]:
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("grid") != budget:
            raise SystemExit(f"{path} holds runs of another budget ({data.get('grid')}); this grid is {budget}. "
                             "Pass --results <another file> (and --runs-dir) for it.")
        return data
    return {"schema": SCHEMA, "grid": budget, "runs": [], "references": [], "sessions": []}


_ROW_KEYS = {"runs": lambda r: (r["agent"], r["dataset"], int(r["seed"])),
             "references": lambda r: (r["dataset"], r["kind"]),
             "sessions": lambda r: (r["started"], r.get("launched"), r.get("jobs"))}


def save_results(path: Path, data: dict[str, Any]) -> None:
    """Write `data`, first adopting the rows another grid sitting wrote to the same file since we read it
    (two sittings, say one per dataset and core, may share one results file)."""
    from rlkit2.checkpoint import update_json

    def merge(disk: dict[str, Any] | None) -> dict[str, Any]:
        if disk is not None and disk.get("grid") != data.get("grid"):
            raise SystemExit(f"{path} now holds runs of another budget ({disk.get('grid')}); this grid is "
                             f"{data.get('grid')}: not merging. Pass --results <another file>.")
        for part, key in _ROW_KEYS.items():
            mine = {key(r) for r in data.setdefault(part, [])}
            data[part].extend(r for r in (disk or {}).get(part, []) if key(r) not in mine)
        data["runs"].sort(key=lambda r: (r["dataset"], r["agent"], r["seed"]))
        data["references"].sort(key=lambda r: (r["dataset"], r["kind"]))
        return data

    update_json(path, merge)


def recorded(data: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(r["agent"], r["dataset"], int(r["seed"])) for r in data["runs"]}


def record_finished(runs: Sequence[Run], cfg: GridConfig, data: dict[str, Any]) -> list[Run]:
    """Add the rows of the runs finished on disk but not in `data` (saving after each); returns them."""
    done = recorded(data)
    added = []
    for run in runs:
        if run.key in done:
            continue
        row = run_row(run, cfg)
        if row is not None:
            data["runs"].append(row)
            save_results(cfg.results, data)
            added.append(run)
    return added


def add_references(cfg: GridConfig, data: dict[str, Any]) -> None:
    have = {(r["dataset"], r["kind"]): r for r in data["references"]}
    for ds in cfg.datasets:
        seeds = cfg.seeds_for(ds.label)
        z = have.get((ds.label, "zero_action"))
        if z is None or int(z.get("seeds", 0)) < seeds:
            print(f"[grid] zero-action policy on {ds.label}: {seeds} seeds x {cfg.eval_episodes} episodes", flush=True)
            data["references"] = [r for r in data["references"] if (r["dataset"], r["kind"]) != (ds.label,
                                                                                                   "zero_action")]
            data["references"].append(zero_action_reference(ds, cfg, seeds))
            save_results(cfg.results, data)
        if (ds.label, "dataset") not in have:
            data["references"].append(dataset_reference(ds, cfg))
            save_results(cfg.results, data)
        if (ds.label, "behaviour") not in have:
            b = behaviour_reference(ds, cfg)
            if b is not None:
                data["references"].append(b)
                save_results(cfg.results, data)


# --------------------------------------------------------------------------- main


def run_grid(cfg: GridConfig, dry_run: bool = False) -> int:
    """Run every pending run of the grid; returns the number of runs that did not finish (0: all done)."""
    runs = plan(cfg)
    data = load_results(cfg.results, cfg.budget) if not dry_run or cfg.results.is_file() else \
        {"runs": [], "references": []}
    if not dry_run:
        missing = []
        for ds in cfg.datasets:
            try:
                dataset_file(ds, cfg.data_dir)
            except Exception as e:  # noqa: BLE001 - every missing dataset is reported together
                missing.append(f"{ds.label}: {e}")
        if missing:
            raise SystemExit("datasets not found:\n  " + "\n  ".join(missing))
        added = record_finished(runs, cfg, data)
        if added:
            print(f"[grid] recorded {len(added)} run(s) finished earlier", flush=True)
    done = recorded(data)
    pending = [r for r in runs if r.key not in done]
    todo = blocks(pending, cfg.datasets)
    print(f"[grid] {len(runs)} runs in the grid, {len(runs) - len(pending)} recorded, {len(pending)} to run "
          f"in {len(todo)} multirun(s)", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if cfg.data_dir:
        env["RLKIT2_DATA_DIR"] = str(Path(cfg.data_dir).expanduser().resolve())
    for block in todo:
        cmd = command(block, cfg)
        prefix = f"RLKIT2_DATA_DIR={shlex.quote(env['RLKIT2_DATA_DIR'])} " if cfg.data_dir else ""
        print(prefix + shlex.join(cmd), flush=True)
    if dry_run:
        return len(pending)
    t0 = time.perf_counter()
    session = {"started": datetime.datetime.now().isoformat(timespec="seconds"), "seconds": 0.0,
               "multiruns": len(todo), "launched": len(pending), "finished": 0, "jobs": cfg.jobs,
               "machine": dict(machine())}
    if todo:  # recorded from the start and updated as runs finish, so a killed sitting still counts
        data.setdefault("sessions", []).append(session)
        save_results(cfg.results, data)

    def progress(block_runs: Sequence[Run]) -> None:
        record_finished(block_runs, cfg, data)
        session["seconds"] = time.perf_counter() - t0
        session["finished"] = sum(r.key in recorded(data) for r in pending)
        save_results(cfg.results, data)

    failed_blocks = 0
    for i, block in enumerate(todo, 1):
        print(f"[grid] multirun {i}/{len(todo)}: {len(block.runs)} runs "
              f"({', '.join(block.agents)} on {', '.join(d.label for d in block.datasets)}, "
              f"seeds {','.join(map(str, block.seeds))})", flush=True)
        proc = subprocess.Popen(command(block, cfg), env=env)
        try:
            while True:
                try:
                    proc.wait(timeout=POLL_S)
                    break
                except subprocess.TimeoutExpired:
                    progress(block.runs)  # rows of the runs finished so far
        finally:
            if proc.poll() is None:  # the grid itself was interrupted: stop the multirun too
                proc.terminate()
                proc.wait()
        failed_blocks += proc.returncode != 0
        progress(block.runs)
    if cfg.references:
        add_references(cfg, data)
    left = [r for r in runs if r.key not in recorded(data)]
    if todo:
        session["seconds"] = time.perf_counter() - t0
    save_results(cfg.results, data)
    print(f"[grid] {len(runs) - len(left)}/{len(runs)} runs recorded in {cfg.results}"
          + (f"; {len(left)} unfinished: " + ", ".join(f"{r.agent}/{r.dataset}/s{r.seed}" for r in left)
             if left else ""), flush=True)
    if failed_blocks:
        print(f"[grid] {failed_blocks} multirun(s) exited with an error; rerun to resume them", flush=True)
    return len(left)


def parse_args(argv: Sequence[str] | None = None) -> tuple[GridConfig, bool]:
    p = argparse.ArgumentParser(prog="python -m experiments.offline.grid", description=__doc__.split("\n")[0])
    p.add_argument("--agents", nargs="+", default=list(AGENTS), help=f"default: {' '.join(AGENTS)}")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS),
                   help="dataset names or paths to D4RL-format .hdf5 files (default: the 7 generated v5 datasets)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"seeds per (agent, dataset) (default: {SEEDS}, {SEEDS_ON['hopper-v5-medium']} on "
                        "hopper-v5-medium)")
    p.add_argument("--updates", type=int, default=UPDATES)
    p.add_argument("--eval-every", type=int, default=EVAL_EVERY)
    p.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES)
    p.add_argument("--jobs", type=int, default=1, help="runs at once (hydra.launcher.n_jobs), one thread each")
    p.add_argument("--data-dir", default=None, help="where named datasets live (RLKIT2_DATA_DIR for the runs)")
    p.add_argument("--runs-dir", default=None, help="run dirs (default: outputs/offline-grid/u<updates>)")
    p.add_argument("--results", default=str(RESULTS), help="results JSON (default: %(default)s)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra Hydra override for every run (repeatable), e.g. agent.hidden=[64,64]")
    p.add_argument("--no-references", action="store_true", help="skip the zero-action and behaviour rows")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing, write nothing")
    a = p.parse_args(argv)
    from rlkit2.registry import agent_names

    unknown = sorted(set(a.agents) - set(agent_names()))
    if unknown:
        p.error(f"unknown agents: {', '.join(unknown)}")
    for name in ("seeds", "updates", "eval_every", "eval_episodes", "jobs"):
        v = getattr(a, name)
        if v is not None and v <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if a.eval_every > a.updates:
        p.error("--eval-every exceeds --updates: no evaluation")
    datasets = [dataset_ref(s) for s in a.datasets]
    labels = [d.label for d in datasets]
    odd = [x for x in labels if not re.fullmatch(r"[\w.+-]+", x)]
    if odd:
        p.error(f"dataset labels (file stems) may hold letters, digits and . _ + - only: {odd}")
    if len(set(labels)) != len(labels):
        p.error(f"two datasets share a label: {labels}")
    runs_dir = Path(a.runs_dir) if a.runs_dir else REPO / "outputs" / "offline-grid" / f"u{a.updates}"
    cfg = GridConfig(agents=list(dict.fromkeys(a.agents)), datasets=datasets, seeds=a.seeds, updates=a.updates,
                     eval_every=a.eval_every, eval_episodes=a.eval_episodes, jobs=a.jobs,
                     runs_dir=runs_dir.expanduser().resolve(), results=Path(a.results).expanduser().resolve(),
                     data_dir=a.data_dir, overrides=list(a.override), references=not a.no_references)
    return cfg, a.dry_run


def main(argv: Sequence[str] | None = None) -> int:
    cfg, dry = parse_args(argv)
    left = run_grid(cfg, dry_run=dry)
    return 0 if dry or left == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
