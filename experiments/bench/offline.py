"""Offline RL benchmark: learner throughput beside d3rlpy, and scores on generated D4RL-style datasets.

    python experiments/bench/offline.py --part a                    # throughput only (~3 min)
    python experiments/bench/offline.py --part b --steps 20000      # scores only, at a fixed update budget
    python experiments/bench/offline.py --part a b --rounds 3 --seeds 0 1 2 --jobs 2

(a) updates/s of every agent at the paper's sizes (batch 256, 256-256 MLPs, obs 17, act 6) on the
    same synthetic data, ours in this process and d3rlpy 2.8.1's TD3+BC and IQL in their own venv
    (`.venv-d3rlpy`, created here with `python3 -m venv` + `pip install torch==2.13.0 d3rlpy`: d3rlpy
    pins an old gymnasium, so it never enters the project venv), interleaved over `--rounds` rounds
    because the machine is shared; plus the fraction of the machine's measured 256x256 float32 matmul
    FLOP/s that one of our updates reaches (update FLOPs counted analytically: matmuls only).
(b) normalised score (mean +- std over seeds) of every agent on the generated {hopper, halfcheetah,
    walker2d}-v5-{medium, medium-replay} datasets (`rlkit2-data make`; D4RL's own *-v2 files work too, by
    their D4RL names via --datasets) after the same number of updates for everyone,
    d3rlpy included (its greedy policy is saved as TorchScript and scored here by rlkit2.core.evaluate,
    the loop that scores ours). Finished runs are appended to the JSON as they come, so a partial
    sweep still has a table.

Writes experiments/offline/results/{throughput_threads<N>,scores,ablation}.{json,md} and prints the tables.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "experiments" / "offline" / "results"
WORKER = Path(__file__).with_name("d3rlpy_worker.py")
D3RLPY_VENV = ROOT / ".venv-d3rlpy"
OURS = ["td3_bc", "iql", "cql", "qsarsa_ac", "qsarsa_ac2"]
D3RLPY = ["td3_bc", "iql"]
DATASETS = [f"{e}-v5-{k}" for e in ("hopper", "halfcheetah", "walker2d") for k in ("medium", "medium-replay")]
OBS, ACT, BATCH, HID = 17, 6, 256, 256


# ----------------------------------------------------------------------------- d3rlpy venv
def d3rlpy_python() -> Path:
    """The d3rlpy venv's python, creating the venv on first use (never touching the project venv)."""
    py = D3RLPY_VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import d3rlpy"], capture_output=True).returncode == 0
    if not ok:
        print(f"[bench] creating {D3RLPY_VENV} (python3 -m venv + pip install torch==2.13.0 d3rlpy) ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(D3RLPY_VENV)], check=True)
        subprocess.run([str(D3RLPY_VENV / "bin" / "pip"), "install", "-q", "torch==2.13.0", "d3rlpy"], check=True)
    return py


def run_d3rlpy(args: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([str(d3rlpy_python()), str(WORKER), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"d3rlpy worker failed ({' '.join(args[:3])}):\n{proc.stderr[-2000:]}")


# ----------------------------------------------------------------------------- (a) throughput
def synthetic_episodes(n: int = 100_000, seed: int = 0) -> dict[str, np.ndarray]:
    """D4RL-style rows (1000-step episodes ended by timeouts): the same data for us and for d3rlpy."""
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(n, np.float32)
    timeouts[999::1000] = 1.0
    timeouts[-1] = 1.0
    return {"observations": rng.normal(size=(n, OBS)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32), "terminals": np.zeros(n, np.float32),
            "timeouts": timeouts}


def matmul_flops(threads: int, seconds: float = 1.5) -> float:
    """Measured dense float32 FLOP/s of 256x256 @ 256x256 on this machine (best of 3 windows)."""
    torch.set_num_threads(threads)
    a, b, out = torch.randn(256, 256), torch.randn(256, 256), torch.empty(256, 256)
    for _ in range(100):
        torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            for _ in range(50):
                torch.mm(a, b, out=out)
            n += 50
        best = max(best, 2 * 256**3 * n / (time.perf_counter() - t0))
    return best


def _macs(dims: list[int], rows: int) -> int:
    return rows * sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=False))


def update_flops(agent: str, obs: int = OBS, act: int = ACT, b: int = BATCH, h: int = HID) -> float:
    """Matmul FLOPs of one update (2 per multiply-add), elementwise ops and the optimiser ignored.

    forward = 2 macs; backward = 2 macs for weight grads + 2 macs for input grads of every layer
    whose input needs a gradient (not a first layer fed by data).
    """
    pi, q, v = [obs, h, h, act], [obs + act, h, h, 1], [obs, h, h, 1]

    def fwd(d, rows=b):
        return 2 * _macs(d, rows)

    def bwd(d, rows=b, input_grad=False):  # weight grads always; input grads past layer 1 unless input_grad
        w = 2 * _macs(d, rows)
        inp = 2 * (_macs(d, rows) - (0 if input_grad else rows * d[0] * d[1]))
        return w + inp

    def bwd_input_only(d, rows=b):
        return 2 * _macs(d, rows)

    if agent == "iql":
        return (2 * fwd(q) + fwd(v)  # target Q (twin) at (s, a), V(s')
                + fwd(v) + bwd(v) + 2 * (fwd(q) + bwd(q)) + fwd(pi) + bwd(pi))
    if agent == "cql":  # 10 sampled actions from each of uniform, pi(.|s), pi(.|s'): 30 B extra critic rows
        k = 10
        rows = b + 3 * b * k
        critic = fwd(pi) + 2 * fwd(q) + fwd(pi, 2 * b * k) + 2 * (fwd(q, rows) + bwd(q, rows))
        return critic + fwd(pi) + 2 * fwd(q) + 2 * bwd_input_only(q) + bwd(pi)  # + SAC actor step
    critic = 2 * fwd(q) + fwd(pi) + 2 * (fwd(q) + bwd(q))  # target (actor' + twin Q'), twin critic step
    actor = fwd(pi) + fwd(q) + bwd_input_only(q) + bwd(pi)  # every 2nd step, Q1 only
    if agent == "td3_bc":
        return critic + actor / 2
    sarsa = fwd(q) + fwd(q) + bwd(q)  # Qbar_sarsa(s', a'), Q_sarsa step
    penalty = fwd(pi) + fwd(q) + 2 * (fwd(q) + bwd(q))  # pi(s), Q_sarsa(s, pi), twin critic on B more rows
    ac2 = (fwd(q) + bwd_input_only(q)) / 2 if agent == "qsarsa_ac2" else 0  # Q_sarsa in the actor
    return critic + actor / 2 + sarsa + penalty + ac2


def time_ours(agent: str, replay: Any, updates: int, warmup: int, threads: int) -> float:
    from rlkit2.registry import EnvSpec, get_agent

    torch.set_num_threads(threads)
    entry = get_agent(agent)
    learner = entry.builder(entry.config_cls(), EnvSpec(OBS, ACT), replay, 0).learner
    for _ in range(warmup):
        learner.step()
    t0 = time.perf_counter()
    for _ in range(updates):
        metrics = learner.step()
    float(metrics["critic_loss"])  # one sync at the end, as the trainer reads metrics only when logging
    return updates / (time.perf_counter() - t0)


def part_a(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from rlkit2.data import to_transitions
    from rlkit2.replay import TransitionReplay

    rows = synthetic_episodes()
    replay = TransitionReplay.from_arrays(to_transitions(rows), seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="rlkit2_bench_"))
    np.savez(tmp / "data.npz", **rows)
    ours: dict[str, list[float]] = {a: [] for a in OURS}
    theirs: dict[str, list[float]] = {a: [] for a in D3RLPY}
    flops: list[float] = []
    jobs = [("ours", a) for a in OURS] + [("d3rlpy", a) for a in D3RLPY]
    bar = tqdm(total=args.rounds * len(jobs), desc="throughput", dynamic_ncols=True)
    for r in range(args.rounds):  # interleaved: every round measures everyone under similar load
        flops.append(matmul_flops(args.threads))
        for who, a in jobs:
            bar.set_postfix_str(f"round {r + 1} {who} {a}")
            if who == "ours":
                ours[a].append(time_ours(a, replay, args.updates, args.warmup, args.threads))
            else:
                out = tmp / f"{a}_{r}.json"
                run_d3rlpy(["throughput", "--algo", a, "--data", str(tmp / "data.npz"), "--updates",
                            str(args.updates), "--warmup", str(args.warmup), "--threads", str(args.threads),
                            "--out", str(out)])
                theirs[a].append(json.loads(out.read_text())["updates_per_s"])
            bar.update(1)
    bar.close()
    peak = max(flops)
    res: dict[str, Any] = {"threads": args.threads, "rounds": args.rounds, "updates_per_round": args.updates,
                           "batch": BATCH, "hidden": [HID, HID], "obs_dim": OBS, "act_dim": ACT,
                           "matmul_256_gflops": [f / 1e9 for f in flops], "torch": torch.__version__,
                           "cpu_count": os.cpu_count(), "load_avg_end": os.getloadavg(), "rows": []}
    for a in OURS:
        f = update_flops(a)
        med = statistics.median(ours[a])
        res["rows"].append({"library": "rlkit2", "agent": a, "updates_per_s": ours[a], "median": med,
                            "best": max(ours[a]), "update_gflop": f / 1e9, "achieved_gflops": f * med / 1e9,
                            "flop_utilisation": f * med / peak})
    for a in D3RLPY:
        f = update_flops(a)
        med = statistics.median(theirs[a])
        res["rows"].append({"library": "d3rlpy 2.8.1", "agent": a, "updates_per_s": theirs[a], "median": med,
                            "best": max(theirs[a]), "update_gflop": f / 1e9, "achieved_gflops": f * med / 1e9,
                            "flop_utilisation": f * med / peak})
    for a in D3RLPY:
        ratio = [o / t for o, t in zip(ours[a], theirs[a], strict=True)]
        res[f"speedup_{a}"] = {"per_round": ratio, "median": statistics.median(ratio)}
    return res


def table_a(res: dict[str, Any]) -> str:
    peak = max(res["matmul_256_gflops"])
    lines = [f"Learner throughput, batch {res['batch']}, MLPs {res['hidden']}, obs {res['obs_dim']}, act "
             f"{res['act_dim']}, {res['threads']} thread(s), {res['rounds']} interleaved rounds of "
             f"{res['updates_per_round']} updates (shared machine: median and best per round). "
             f"Measured 256x256 float32 matmul: {peak:.0f} GFLOP/s (best round).", "",
             "| library | agent | updates/s (median) | best | matmul GFLOP/update | achieved GFLOP/s | "
             "of matmul peak |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['library']} | {r['agent']} | {r['median']:.0f} | {r['best']:.0f} | "
                     f"{r['update_gflop']:.3f} | {r['achieved_gflops']:.1f} | {100 * r['flop_utilisation']:.0f}% |")
    lines.append("")
    for a in D3RLPY:
        s = res[f"speedup_{a}"]
        lines.append(f"rlkit2 / d3rlpy {a}: {s['median']:.2f}x (median of per-round ratios "
                     f"{', '.join(f'{x:.2f}' for x in s['per_round'])})")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- (b) scores
def _score_task(task: dict[str, Any]) -> dict[str, Any]:
    """One (library, agent, dataset, seed) run: train `steps` updates, then score the greedy policy."""
    torch.set_num_threads(1)
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    from rlkit2.actors import TorchPolicyActor
    from rlkit2.core import evaluate
    from rlkit2.data import add_v5_score, load_offline_dataset, read_d4rl, score_function
    from rlkit2.registry import get_agent, make_env
    from rlkit2.replay import TransitionReplay
    from rlkit2.run.common import env_spec
    from rlkit2.seeding import seed_everything

    env_cfg = GymEnvConfig(id=task["dataset"])
    data = load_offline_dataset(env_cfg)
    env = make_env(env_cfg, task["seed"] + 10_000)
    spec = env_spec(env)
    t0 = time.perf_counter()
    if task["library"] == "rlkit2":
        seed_everything(task["seed"])
        entry = get_agent(task["agent"])
        replay = TransitionReplay.from_arrays(data.arrays, seed=task["seed"])
        agent = entry.builder(entry.config_cls(**task.get("overrides", {})), spec, replay, task["seed"])
        for _ in range(task["steps"]):
            agent.learner.step()
        policy = agent.policy
    else:
        with tempfile.TemporaryDirectory() as tmp:
            raw = read_d4rl(data.source).arrays
            np.savez(Path(tmp) / "d.npz", **{k: raw[k] for k in ("observations", "actions", "rewards", "terminals",
                                                                  "timeouts")})
            run_d3rlpy(["train", "--algo", task["agent"], "--data", str(Path(tmp) / "d.npz"), "--steps",
                        str(task["steps"]), "--seed", str(task["seed"]), "--out", str(Path(tmp) / "p.pt")])
            module = torch.jit.load(str(Path(tmp) / "p.pt"))
        policy = TorchPolicyActor(module, action_low=spec.action_low, action_high=spec.action_high)
    train_s = time.perf_counter() - t0
    ev = evaluate(env, policy, task["episodes"], seed=10_000 + task["seed"],
                  score_fn=score_function(env_cfg, data.metadata))
    add_v5_score(ev, env_cfg, data.metadata)
    return {**task, "train_seconds": train_s, "return": ev["eval/return"],
            "score": ev.get("eval/normalized_score"), "score_v5": ev.get("eval/normalized_score_v5")}


def available_datasets(names: list[str]) -> tuple[list[str], dict[str, str]]:
    from rlkit2.data import resolve_dataset_path

    ok, missing = [], {}
    for n in names:
        try:
            resolve_dataset_path(n)
            ok.append(n)
        except Exception as e:  # noqa: BLE001 - reported in the results
            missing[n] = str(e).split(";")[0]
    return ok, missing


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    datasets, missing = available_datasets(args.datasets)
    for n, why in missing.items():
        print(f"[bench] skipping {n}: {why}", flush=True)
    agents = [("rlkit2", a) for a in args.agents] + [("d3rlpy", a) for a in args.d3rlpy_agents]
    if any(lib == "d3rlpy" for lib, _ in agents):
        d3rlpy_python()
    path = OUT / "scores.json"
    done: list[dict[str, Any]] = []
    if args.resume and path.exists():
        prev = json.loads(path.read_text())
        if prev.get("steps") == args.steps:
            done = prev["runs"]
    key = lambda t: (t["library"], t["agent"], t["dataset"], t["seed"])  # noqa: E731
    have = {key(t) for t in done}
    tasks = [{"library": lib, "agent": a, "dataset": d, "seed": s, "steps": args.steps, "episodes": args.episodes}
             for s in args.seeds for d in datasets for lib, a in agents]
    tasks = [t for t in tasks if key(t) not in have]
    res = {"steps": args.steps, "episodes": args.episodes, "seeds": args.seeds, "datasets": datasets,
           "missing_datasets": missing, "runs": done}
    bar = tqdm(total=len(tasks), desc=f"scores ({args.steps} updates/run)", dynamic_ncols=True)
    with cf.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_score_task, t): t for t in tasks}
        for fut in cf.as_completed(futures):
            t = futures[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001 - one failed run must not lose the others
                r = {**t, "error": f"{type(e).__name__}: {e}"[:500]}
            res["runs"].append(r)
            _write(res, "scores", table_b(res))
            bar.set_postfix_str(f"{t['library']} {t['agent']} {t['dataset']} s{t['seed']}: "
                                f"{r.get('score', float('nan')) if 'error' not in r else 'ERROR'}")
            bar.update(1)
    bar.close()
    return res


def table_b(res: dict[str, Any]) -> str:
    cols = sorted({(r["library"], r["agent"]) for r in res["runs"]}, key=lambda x: (x[0] != "rlkit2", x[1]))
    head = [f"{'d3rlpy ' if lib == 'd3rlpy' else ''}{a}" for lib, a in cols]
    lines: list[str] = []
    for key, what in (("score", "D4RL reference returns"),
                      ("score_v5", "the dataset's own v5 references: its random policy and generating expert")):
        lines += [f"Normalised score ({what}; mean ± std over seeds, n = seeds finished) after {res['steps']} "
                  f"updates for every agent, {res['episodes']} evaluation episodes per run.", "",
                  "| dataset | " + " | ".join(head) + " |", "|---" * (len(cols) + 1) + "|"]
        for d in res["datasets"]:
            cells = []
            for lib, a in cols:
                s = [r[key] for r in res["runs"] if (r["library"], r["agent"], r["dataset"]) == (lib, a, d)
                     and r.get(key) is not None]
                cells.append(f"{np.mean(s):.1f} ± {np.std(s):.1f} (n={len(s)})" if s else "–")
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        lines.append("")
    errors = [r for r in res["runs"] if "error" in r]
    if errors:
        lines += [f"{len(errors)} run(s) failed: " + "; ".join(
            f"{r['library']} {r['agent']} {r['dataset']} s{r['seed']}: {r['error'][:120]}" for r in errors[:5]), ""]
    if res.get("missing_datasets"):
        lines += ["Not run (dataset not generated): " + ", ".join(res["missing_datasets"])]
    return "\n".join(lines).rstrip()


# ----------------------------------------------------------------------------- (c) ablation
# The Q_sarsa regularisers are a reconstruction (rlkit2/agents/qsarsa/losses.py): each variant switches
# one piece on or off at the same budget, on the datasets given by --ablation-datasets.
ABLATION: dict[str, tuple[str, dict[str, Any]]] = {
    "AC eta=1 (10x the default critic penalty)": ("qsarsa_ac", {"eta": 1.0}),
    "AC eta=0, target blend beta=0.5 (no penalty)": ("qsarsa_ac", {"eta": 0.0, "beta": 0.5}),
    "AC2 kappa=0.5, no BC term (Q_sarsa instead of pi_beta)": ("qsarsa_ac2", {"bc_weight": 0.0}),
}
# Rows the main score table already has at the same budget and seeds (no need to rerun them):
# qsarsa_ac with eta=0 trains exactly like td3_bc (tested), and the two defaults.
REUSED = {"TD3+BC (= AC with eta=0)": "td3_bc", "AC eta=0.1 (default)": "qsarsa_ac",
          "AC2 kappa=0.5 (default)": "qsarsa_ac2"}


def part_c(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    datasets, missing = available_datasets(args.ablation_datasets)
    tasks = [{"library": "rlkit2", "agent": agent, "label": label, "overrides": over, "dataset": d, "seed": s,
              "steps": args.steps, "episodes": args.episodes}
             for s in args.seeds for d in datasets for label, (agent, over) in ABLATION.items()]
    res: dict[str, Any] = {"steps": args.steps, "episodes": args.episodes, "seeds": args.seeds, "datasets": datasets,
                           "missing_datasets": missing, "runs": []}
    bar = tqdm(total=len(tasks), desc=f"ablation ({args.steps} updates/run)", dynamic_ncols=True)
    with cf.ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(_score_task, t): t for t in tasks}
        for fut in cf.as_completed(futures):
            t = futures[fut]
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001
                r = {**t, "error": f"{type(e).__name__}: {e}"[:500]}
            res["runs"].append(r)
            _write(res, "ablation", table_c(res))
            bar.update(1)
    bar.close()
    return res


def table_c(res: dict[str, Any]) -> str:
    lines = [f"Q_sarsa regulariser ablation: normalised score (mean ± std over seeds) after {res['steps']} updates "
             "(first rows: from scores.json at the same budget and seeds).",
             "", "| variant | " + " | ".join(res["datasets"]) + " |", "|---" * (len(res["datasets"]) + 1) + "|"]
    main = json.loads((OUT / "scores.json").read_text()) if (OUT / "scores.json").exists() else {"runs": []}
    if main.get("steps") != res["steps"]:
        main = {"runs": []}
    runs = [{**r, "label": label} for label, agent in REUSED.items() for r in main["runs"]
            if r["library"] == "rlkit2" and r["agent"] == agent and r["seed"] in res["seeds"]] + res["runs"]
    for label in [*REUSED, *ABLATION]:
        cells = []
        for d in res["datasets"]:
            s = [r["score"] for r in runs if r.get("label") == label and r["dataset"] == d
                 and r.get("score") is not None]
            cells.append(f"{np.mean(s):.1f} ± {np.std(s):.1f} (n={len(s)})" if s else "–")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def _write(res: dict[str, Any], name: str, table: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(res, indent=1, default=float)), (".md", table + "\n")):
        tmp = OUT / f".{name}{suffix}.tmp"
        tmp.write_text(text)
        tmp.replace(OUT / f"{name}{suffix}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", nargs="+", choices=["a", "b", "c"], default=["a", "b"],
                   help="a: throughput, b: scores, c: ablation of the Q_sarsa regularisers")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="(a) torch threads, both sides")
    p.add_argument("--rounds", type=int, default=3, help="(a) interleaved measurement rounds")
    p.add_argument("--updates", type=int, default=400, help="(a) timed updates per agent per round")
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--steps", type=int, default=20_000, help="(b) updates per run (the same for every agent)")
    p.add_argument("--episodes", type=int, default=5, help="(b) evaluation episodes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--datasets", nargs="+", default=DATASETS)
    p.add_argument("--agents", nargs="+", default=OURS, choices=OURS)
    p.add_argument("--d3rlpy-agents", nargs="*", default=D3RLPY, choices=D3RLPY)
    p.add_argument("--ablation-datasets", nargs="+", default=["hopper-v5-medium"])
    p.add_argument("--jobs", type=int, default=1, help="(b) runs in parallel (one thread each)")
    p.add_argument("--resume", action="store_true", help="(b) keep finished runs of scores.json (same --steps)")
    args = p.parse_args(argv)
    if "a" in args.part:
        res = part_a(args)
        table = table_a(res)
        _write(res, f"throughput_threads{args.threads}", table)
        print(table, flush=True)
    if "b" in args.part:
        res = part_b(args)
        table = table_b(res)
        _write(res, "scores", table)
        print(table, flush=True)
    if "c" in args.part:
        res = part_c(args)
        table = table_c(res)
        _write(res, "ablation", table)
        print(table, flush=True)
    print(f"[bench] results in {OUT}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
