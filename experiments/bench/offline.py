"""Offline RL learner throughput beside d3rlpy (the scores are the evidence grid's: experiments/offline/grid.py).

    python experiments/bench/offline.py                             # 3 interleaved rounds (~3 min)
    python experiments/bench/offline.py --threads 1 --rounds 5
    python experiments/bench/offline.py --device cuda --no-d3rlpy    # learners on a GPU (run where one exists)

Updates/s of every agent at the paper's sizes (batch 256, 256-256 MLPs, obs 17, act 6) on the same synthetic
data, ours in this process and d3rlpy 2.8.1's TD3+BC and IQL in their own venv (`.venv-d3rlpy`, created here
with `python3 -m venv` + `pip install torch==2.13.0 d3rlpy`: d3rlpy pins an old gymnasium, so it never enters
the project venv), interleaved over `--rounds` rounds because the machine is shared; plus the fraction of the
machine's measured 256x256 float32 matmul FLOP/s that one of our updates reaches (update FLOPs counted
analytically: matmuls only).

With `--device cuda` our learners train on the GPU (replay batches gathered in host memory and copied, as in a
real run) and the peak is the GPU's 256x256 float32 matmul; `--no-d3rlpy` leaves d3rlpy's rows out (its venv
lives on this machine only).

Writes experiments/offline/results/throughput_threads<N>.{json,md} (throughput_cuda.{json,md} on a GPU) and
prints the table.
"""

from __future__ import annotations

import argparse
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
if str(ROOT) not in sys.path:  # run as a script: make `experiments` importable
    sys.path.insert(0, str(ROOT))
from experiments import provenance  # noqa: E402

OUT = ROOT / "experiments" / "offline" / "results"
WORKER = Path(__file__).with_name("d3rlpy_worker.py")
D3RLPY_VENV = ROOT / ".venv-d3rlpy"
OURS = ["td3_bc", "iql", "cql", "qsarsa_ac", "qsarsa_ac2"]
D3RLPY = ["td3_bc", "iql"]
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


# ----------------------------------------------------------------------------- throughput
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


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_flops(threads: int, seconds: float = 1.5, device: str = "cpu") -> float:
    """Measured dense float32 FLOP/s of 256x256 @ 256x256 on `device` (best of 3 windows)."""
    torch.set_num_threads(threads)
    a, b, out = (torch.randn(256, 256, device=device), torch.randn(256, 256, device=device),
                 torch.empty(256, 256, device=device))
    for _ in range(100):
        torch.mm(a, b, out=out)
    best = 0.0
    for _ in range(3):
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            for _ in range(50):
                torch.mm(a, b, out=out)
            n += 50
            _sync(device)
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


def describe_device(device: str) -> str:
    return torch.cuda.get_device_name(0) if device == "cuda" else "cpu"


def time_ours(agent: str, replay: Any, updates: int, warmup: int, threads: int) -> float:
    from rlkit2.registry import EnvSpec, get_agent

    torch.set_num_threads(threads)
    entry = get_agent(agent)
    learner = entry.builder(entry.config_cls(), EnvSpec(OBS, ACT), replay, 0).learner
    for _ in range(warmup):
        learner.step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # the warm-up's queued kernels are not timed
    t0 = time.perf_counter()
    for _ in range(updates):
        metrics = learner.step()
    float(metrics["critic_loss"])  # one sync at the end (GPU too), as the trainer reads metrics only when logging
    return updates / (time.perf_counter() - t0)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from rlkit2.data import to_transitions
    from rlkit2.replay import TransitionReplay

    rows = synthetic_episodes()
    replay = TransitionReplay.from_arrays(to_transitions(rows), seed=0, device=args.device)
    tmp = Path(tempfile.mkdtemp(prefix="rlkit2_bench_"))
    np.savez(tmp / "data.npz", **rows)
    ours: dict[str, list[float]] = {a: [] for a in OURS}
    theirs: dict[str, list[float]] = {a: [] for a in D3RLPY}
    flops: list[float] = []
    theirs_names = D3RLPY if args.d3rlpy else []
    jobs = [("ours", a) for a in OURS] + [("d3rlpy", a) for a in theirs_names]
    bar = tqdm(total=args.rounds * len(jobs), desc="throughput", dynamic_ncols=True)
    for r in range(args.rounds):  # interleaved: every round measures everyone under similar load
        flops.append(matmul_flops(args.threads, device=args.device))
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
    res: dict[str, Any] = {"device": describe_device(args.device), "threads": args.threads,
                           "rounds": args.rounds, "updates_per_round": args.updates,
                           "batch": BATCH, "hidden": [HID, HID], "obs_dim": OBS, "act_dim": ACT,
                           "matmul_256_gflops": [f / 1e9 for f in flops], "machine": provenance.machine(),
                           "versions": provenance.versions(), "load_avg_end": os.getloadavg(), "rows": []}
    for a in OURS:
        f = update_flops(a)
        med = statistics.median(ours[a])
        res["rows"].append({"library": "rlkit2", "agent": a, "updates_per_s": ours[a], "median": med,
                            "best": max(ours[a]), "update_gflop": f / 1e9, "achieved_gflops": f * med / 1e9,
                            "flop_utilisation": f * med / peak})
    for a in theirs_names:
        f = update_flops(a)
        med = statistics.median(theirs[a])
        res["rows"].append({"library": "d3rlpy 2.8.1", "agent": a, "updates_per_s": theirs[a], "median": med,
                            "best": max(theirs[a]), "update_gflop": f / 1e9, "achieved_gflops": f * med / 1e9,
                            "flop_utilisation": f * med / peak})
    for a in theirs_names:
        ratio = [o / t for o, t in zip(ours[a], theirs[a], strict=True)]
        res[f"speedup_{a}"] = {"per_round": ratio, "median": statistics.median(ratio)}
    return res


def table(res: dict[str, Any]) -> str:
    peak = max(res["matmul_256_gflops"])
    lines = [f"Learner throughput, batch {res['batch']}, MLPs {res['hidden']}, obs {res['obs_dim']}, act "
             f"{res['act_dim']}, {res['threads']} thread(s), {res['rounds']} interleaved rounds of "
             f"{res['updates_per_round']} updates (shared machine: median and best per round). "
             f"Learners on {res.get('device', 'cpu')}. "
             f"Measured 256x256 float32 matmul there: {peak:.0f} GFLOP/s (best round). Machine: "
             f"{res['machine']['cpu']}, {res['machine']['cpus']} logical CPUs, load average at the end "
             f"{res['load_avg_end'][0]:.1f}; torch {res['versions']['torch']}.", "",
             "| library | agent | updates/s (median) | best | matmul GFLOP/update | achieved GFLOP/s | "
             "of matmul peak |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['library']} | {r['agent']} | {r['median']:.0f} | {r['best']:.0f} | "
                     f"{r['update_gflop']:.3f} | {r['achieved_gflops']:.1f} | {100 * r['flop_utilisation']:.0f}% |")
    lines.append("")
    for a in D3RLPY:
        if f"speedup_{a}" not in res:
            continue
        s = res[f"speedup_{a}"]
        lines.append(f"rlkit2 / d3rlpy {a}: {s['median']:.2f}x (median of per-round ratios "
                     f"{', '.join(f'{x:.2f}' for x in s['per_round'])})")
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
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads, both sides")
    p.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds")
    p.add_argument("--updates", type=int, default=400, help="timed updates per agent per round")
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where our learners train")
    p.add_argument("--no-d3rlpy", dest="d3rlpy", action="store_false", help="leave d3rlpy's rows out")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device on this machine")
    res = measure(args)
    text = table(res)
    _write(res, "throughput_cuda" if args.device == "cuda" else f"throughput_threads{args.threads}", text)
    print(text, flush=True)
    print(f"[bench] results in {OUT}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
