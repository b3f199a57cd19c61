"""The offline-RL evidence grid: every agent on every dataset over several seeds, as ordinary `rlkit2-train` runs.

    python -m experiments.offline.grid --dry-run                 # print the Hydra multirun commands
    python -m experiments.offline.grid --jobs 2                  # run (or resume) the whole grid
    python -m experiments.offline.grid --agents td3_bc iql --datasets hopper-v5-medium --seeds 2 --updates 20000
    python -m experiments.offline.grid --shard 0/2 & python -m experiments.offline.grid --shard 1/2   # two sittings
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

The pieces: `grid_plan.py` (what is run), `grid_results.py` (what is recorded), this file (running it).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments import provenance
from experiments.offline.grid_plan import (
    AGENTS,
    DATASETS,
    EVAL_EPISODES,
    EVAL_EVERY,
    REPO,
    RESULTS,
    SEEDS,
    SEEDS_ON,
    UPDATES,
    GridConfig,
    Run,
    blocks,
    command,
    dataset_file,
    dataset_ref,
    plan,
)
from experiments.offline.grid_results import (
    add_references,
    check_one_collection,
    load_results,
    now,
    record_finished,
    recorded,
    save_results,
)

POLL_S = 60.0  # while a multirun runs, its finished runs are recorded this often

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
        check_one_collection(data, cfg)
        added = record_finished(runs, cfg, data)
        if added:
            print(f"[grid] recorded {len(added)} run(s) finished earlier", flush=True)
    done = recorded(data)
    pending = [r for r in runs if r.key not in done]
    todo = blocks(pending, cfg.datasets)
    k, n = cfg.shard
    where = "in the grid" if n == 1 else f"in shard {k}/{n} of the grid"
    print(f"[grid] {len(runs)} runs {where}, {len(runs) - len(pending)} recorded, {len(pending)} to run "
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
    session = {"started": now(), "updated": now(), "seconds": 0.0,
               "multiruns": len(todo), "launched": len(pending), "finished": 0, "jobs": cfg.jobs,
               "shard": f"{cfg.shard[0]}/{cfg.shard[1]}", "machine": provenance.machine()}
    if todo:  # recorded from the start and updated as runs finish, so a killed sitting still counts
        data.setdefault("sessions", []).append(session)
        save_results(cfg.results, data)

    def progress(block_runs: Sequence[Run]) -> None:
        record_finished(block_runs, cfg, data)
        session["seconds"] = time.perf_counter() - t0
        session["finished"] = sum(r.key in recorded(data) for r in pending)
        session["updated"] = now()
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
    if cfg.references and cfg.shard[0] == 0:  # one shard computes them
        add_references(cfg, data)
    left = [r for r in runs if r.key not in recorded(data)]
    if todo:
        session["seconds"], session["updated"] = time.perf_counter() - t0, now()
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
    p.add_argument("--shard", default="0/1", metavar="K/N",
                   help="run only the K-th of N disjoint shares of the grid (K = 0..N-1), e.g. one sitting per core "
                        "or machine on the same --results file; shard 0 adds the reference rows")
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
    m = re.fullmatch(r"(\d+)/(\d+)", a.shard)
    if not m or not 0 <= int(m[1]) < int(m[2]):
        p.error(f"--shard must be K/N with 0 <= K < N, got {a.shard!r}")
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
                     data_dir=a.data_dir, overrides=list(a.override), references=not a.no_references,
                     shard=(int(m[1]), int(m[2])))
    return cfg, a.dry_run


def main(argv: Sequence[str] | None = None) -> int:
    cfg, dry = parse_args(argv)
    left = run_grid(cfg, dry_run=dry)
    return 0 if dry or left == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
