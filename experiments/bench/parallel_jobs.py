"""Parallel jobs on one machine: do side-by-side runs thrash, and does `trainer.threads=auto` prevent it?

    python experiments/bench/parallel_jobs.py                  # ~5 min on an idle 2-core machine
    python experiments/bench/parallel_jobs.py --updates 2000   # quicker

Each setting launches TD3+BC (256-256, batch 256) on the same 20k-row hopper-v5-random file through the real
entry point (`rlkit2-train`), as a user would: alone, then N jobs at once as a joblib multirun
(`hydra/launcher=joblib hydra.launcher.n_jobs=N`), with `trainer.threads` = auto (the default: the physical
cores divided among the launcher's jobs), 1, and the physical core count (what `auto` chose before it knew
about the launcher: every job takes every core). A job's rate is its updates over its training wall time
(`time/steps_per_s` of its last log row; evaluation is off). Prints a table and writes
`experiments/bench/results/parallel_jobs.json` (machine, versions, load average before the run).

The number to read: the aggregate of N `auto` jobs as a fraction of the aggregate of N `threads=1` jobs
(target >= 90 %), and how far N jobs with all cores each fall below it (the thrashing `auto` avoids).
Needs a quiet machine: background jobs make every row slower, and unevenly.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[2]
if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(REPO))


def random_hopper_file(data_dir: Path, rows: int = 20_000) -> Path:
    """hopper-v5-random with `rows` rows, made by `rlkit2-data make`'s own generator (throughput does not depend
    on the data's quality)."""
    from rlkit2.data.genconfig import GenerationConfig
    from rlkit2.data.generate import make_dataset

    return make_dataset("hopper-v5-random", GenerationConfig(env="hopper", transitions=rows, data_dir=str(data_dir),
                                                             progress=False))


def run_jobs(data: Path, work: Path, jobs: int, threads: str, updates: int) -> list[float]:
    """Launch `jobs` seeds at once (a joblib multirun when jobs > 1); each job's updates/s."""
    sweep = work / f"j{jobs}-t{threads}"
    args = [sys.executable, "-m", "rlkit2.train", "-m", f"seed={','.join(str(s) for s in range(jobs))}",
            "hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={sweep}",
            "agent=td3_bc", "env=hopper", f"env.dataset={data}", f"trainer.total_steps={updates}",
            "trainer.eval_every=0", f"trainer.log_every={updates}", f"trainer.checkpoint_every={updates}",
            f"trainer.threads={threads}", "trainer.progress=false", "trainer.plot=false", "logger.console=false"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    subprocess.run(args, cwd=work, env=env, check=True, capture_output=True, text=True)
    rates = []
    for metrics in sorted(sweep.rglob("metrics.jsonl")):
        rows = [json.loads(x) for x in metrics.read_text().splitlines()]
        rates.append(float([r for r in rows if "time/steps_per_s" in r][-1]["time/steps_per_s"]))
    if len(rates) != jobs:
        raise RuntimeError(f"{sweep}: expected {jobs} runs, found {len(rates)}")
    return rates


def main() -> None:
    import psutil

    from experiments import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=4000)
    p.add_argument("--jobs", type=int, nargs="+", default=[2, 3])
    args = p.parse_args()
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    load_before = os.getloadavg()
    rows = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = random_hopper_file(work / "data")
        settings = [(1, "auto"), (1, "1")] + [(n, t) for n in args.jobs for t in ("auto", "1", str(cores))]
        for jobs, threads in settings:
            rates = run_jobs(data, work, jobs, threads, args.updates)
            rows.append({"jobs": jobs, "threads": threads, "per_job": rates, "aggregate": float(sum(rates))})
            print(f"{jobs} job(s), threads={threads:>4}: " + ", ".join(f"{r:.0f}" for r in rates)
                  + f" updates/s (aggregate {sum(rates):.0f})", flush=True)
    one = {r["jobs"]: r["aggregate"] for r in rows if r["threads"] == "1"}
    for r in rows:
        r["vs_threads1_aggregate"] = r["aggregate"] / one[r["jobs"]] if r["jobs"] in one else None
    result = {"rows": rows, "updates": args.updates, "agent": "td3_bc 256-256 batch 256", "cores": cores,
              "machine": provenance.machine(), "versions": provenance.versions(),
              "load_before": load_before, "wall_s": time.perf_counter() - t0,
              "date": datetime.datetime.now().isoformat(timespec="seconds")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "parallel_jobs.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n| jobs | trainer.threads | updates/s per job | aggregate | vs threads=1 aggregate |")
    print("|---|---|---|---|---|")
    for r in rows:
        ratio = f"{100 * r['vs_threads1_aggregate']:.0f} %" if r["vs_threads1_aggregate"] else "-"
        print(f"| {r['jobs']} | {r['threads']} | {', '.join(f'{x:.0f}' for x in r['per_job'])} | "
              f"{r['aggregate']:.0f} | {ratio} |")
    print(f"\n{cores} physical cores; load average before: {load_before[0]:.2f}; wall {result['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
