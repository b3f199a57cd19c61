"""POIR's planner per control step at one torch thread, alone and with a busy competitor on the other core.

    python experiments/bench/planner_latency.py --policy <run dir or policy.pt> --demos <demos.hdf5>
    python experiments/bench/planner_latency.py --pause <pid> ...   # SIGSTOP these processes meanwhile

The deployed POIR actor's planner (`MPPIPlanner.plan`, gating off: every call plans) is called on demo states
perturbed with Gaussian noise (std 0.02, the off-distribution states where it plans), for the configured
setting and cheaper ones (fewer candidates, a shorter look-ahead). Each setting is timed twice: with nothing
else started by this script, then with a competitor process busy on another core (a one-thread float32
matmul loop, the load of a second training job). The bench pins itself to one core and the competitor to
another where the OS allows (`sched_setaffinity`). 20 Hz control leaves 50 ms a step: the table says which
settings fit at p95. `--pause PID ...` stops those processes (SIGSTOP) for the measurement and resumes them
(SIGCONT) after, so background jobs do not distort it; the load average before it is recorded.
`--success-cell all:0.1 --episodes 30` also prices each setting in success: the policy with that setting
deployed, on the *development* episodes of its training seed (the runners' `eval_seed`, never the study's
held-out ones) in that shift cell. Writes `experiments/bench/results/planner_latency.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

OUT = Path(__file__).parent / "results"
BUDGET_MS = 50.0
COMPETITOR = ("import os, torch\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\n"
              "while True:\n    a = torch.tanh(a @ a) \n")
# (label, overrides of the configured setting): the cheaper planners the issue asks to price
VARIANTS = [("configured", {}), ("32 candidates", {"num_samples": 32}), ("16 candidates", {"num_samples": 16}),
            ("horizon 3", {"horizon": 3}), ("horizon 3, 32 candidates", {"horizon": 3, "num_samples": 32})]


@contextlib.contextmanager
def paused(pids: list[int]) -> Iterator[None]:
    stopped: list[int] = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:  # every process stopped here runs again, whatever failed
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@contextlib.contextmanager
def competitor(core: int | None) -> Iterator[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env)
    if core is not None:
        os.sched_setaffinity(proc.pid, {core})
    time.sleep(2.0)  # torch imported, loop running
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def states(demos: Path, n: int) -> np.ndarray:
    from experiments.imitation.study import compose
    from rlkit2.data.robomimic import read_robomimic, to_transitions

    keys = list(compose(["experiment=poir_lift"]).env.obs_keys)  # the order the policy was trained on
    obs = to_transitions(read_robomimic(demos, obs_keys=keys), keys)["observations"]
    idx = np.random.default_rng(0).integers(0, len(obs), n)
    return (obs[idx] + np.random.default_rng(1).normal(0, 0.02, obs[idx].shape)).astype(np.float32)


def time_setting(actor: object, settings: object, obs: np.ndarray) -> dict[str, float]:
    import torch

    planner = actor.planner  # type: ignore[attr-defined]
    x = torch.as_tensor(obs)
    for o in x[:10]:
        planner.plan(o, settings)  # warm-up
    ms = []
    for o in x:
        t = time.perf_counter()
        planner.plan(o, settings)
        ms.append(1e3 * (time.perf_counter() - t))
    a = np.asarray(ms)
    return {"mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "max_ms": float(a.max()), "calls": len(a)}


def success(actor: object, settings: object, cell: str, seed: int, episodes: int) -> dict[str, float]:
    """The deployed policy's success with `settings` as its planner, on `seed`'s development episodes."""
    from experiments.imitation.study import compose, parse_cells, shift_overrides
    from rlkit2.core import evaluate
    from rlkit2.registry import make_env
    from rlkit2.run.common import eval_seed

    learner = actor.learner  # type: ignore[attr-defined]
    deployed = learner.arm_stats.best()
    kept = learner.arms[deployed]
    learner.arms[deployed] = settings
    try:
        env = make_env(compose(["experiment=poir_lift", *shift_overrides(*parse_cells(cell)[0])]).env, eval_seed(seed))
        out = evaluate(env, actor, episodes, seed=eval_seed(seed))  # type: ignore[arg-type]
    finally:
        learner.arms[deployed] = kept
    return {"cell": cell, "episodes": episodes, "success_rate": out["eval/success_rate"]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", required=True, help="a POIR run dir or its policy.pt")
    ap.add_argument("--demos", required=True, help="the demos it was trained on (robomimic HDF5)")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--pause", type=int, nargs="*", default=[], help="PIDs to SIGSTOP during the measurement")
    ap.add_argument("--out", default=str(OUT / "planner_latency.json"))
    ap.add_argument("--success-cell", default="", help="axis:s of the study's cells: also measure success there")
    ap.add_argument("--episodes", type=int, default=30, help="development episodes per setting (--success-cell)")
    ap.add_argument("--seed", type=int, default=0, help="the policy's training seed (its development episodes)")
    args = ap.parse_args(argv)
    import torch

    from rlkit2.policy import load_policy

    torch.set_num_threads(1)
    actor = load_policy(args.policy)
    if not hasattr(actor, "planner"):
        raise SystemExit(f"{args.policy}: not a POIR policy (no planner)")
    obs = states(Path(args.demos), args.calls)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    mine, other = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    load_before = os.getloadavg()
    learner = actor.learner  # type: ignore[attr-defined]
    base = learner.arms[learner.arm_stats.best()]  # the setting the saved policy deploys
    rows = []
    with paused(args.pause):
        if mine is not None:
            os.sched_setaffinity(0, {mine})
        for label, over in VARIANTS:
            settings = dataclasses.replace(base, plan=True, **over)
            row = {"setting": label, "horizon": settings.horizon, "num_samples": settings.num_samples,
                   "alone": time_setting(actor, settings, obs)}
            with competitor(other):
                row["with_competitor"] = time_setting(actor, settings, obs)
            rows.append(row)
        if mine is not None:
            os.sched_setaffinity(0, set(cores))
    if args.success_cell:
        for row, (_, over) in zip(rows, VARIANTS, strict=True):
            row["success"] = success(actor, dataclasses.replace(base, **over), args.success_cell, args.seed,
                                     args.episodes)
    from experiments import provenance

    result = {"policy": str(args.policy), "torch_threads": 1, "budget_ms": BUDGET_MS, "rows": rows,
              "load_average_before": load_before, "paused_pids": args.pause, "pinned": mine is not None,
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": {**provenance.machine(), "cores": len(cores) or os.cpu_count()},
              "versions": provenance.versions("robosuite", "mujoco")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"POIR planner, 1 torch thread, {args.calls} calls per row (load before: "
          f"{', '.join(f'{x:.1f}' for x in load_before)}; paused {len(args.pause)} processes)")
    print(f"{'setting':28s} {'H':>2s} {'K':>3s} | {'alone mean/p95':>16s} | {'competitor mean/p95':>20s} | fits 50 ms")
    for r in rows:
        a, c = r["alone"], r["with_competitor"]
        fits = "yes" if c["p95_ms"] <= BUDGET_MS else "NO"
        won = f" | success {r['success']['success_rate']:.2f}" if "success" in r else ""
        print(f"{r['setting']:28s} {r['horizon']:2d} {r['num_samples']:3d} | {a['mean_ms']:6.1f} / "
              f"{a['p95_ms']:6.1f} ms | {c['mean_ms']:8.1f} / {c['p95_ms']:6.1f} ms | {fits}{won}")


if __name__ == "__main__":
    main()
