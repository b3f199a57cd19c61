"""Data-parallel overhead: one learner update on one process vs the same global batch on K gloo ranks.

    python experiments/bench/ddp.py --agent td3_bc --batch 256 --ranks 2 --updates 300

On a CPU machine K ranks share the same cores, so this measures the cost of the mechanism (sharded
sampling + one flat gradient all-reduce per optimiser step), not a speed-up. Prints a table and writes
experiments/bench/results/ddp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlkit2.distributed import shutdown

OUT = Path(__file__).parent / "results"


def _data(n: int = 20_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(n, 17)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (n, 6)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_observations": rng.normal(size=(n, 17)).astype(np.float32),
            "terminals": np.zeros(n, np.float32), "next_actions": rng.uniform(-1, 1, (n, 6)).astype(np.float32)}


def _time_updates(agent: str, batch: int, updates: int) -> float:
    from rlkit2.api import make
    from rlkit2.core import EnvSpec
    from rlkit2.replay import TransitionReplay

    torch.manual_seed(0)
    learner = make(agent, EnvSpec(17, 6), TransitionReplay.from_arrays(_data()), batch_size=batch).learner
    for _ in range(20):
        learner.step()
    t = time.perf_counter()
    for _ in range(updates):
        learner.step()
    return (time.perf_counter() - t) / updates


def _worker(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, args.threads // world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        sec = _time_updates(args.agent, args.batch, args.updates)
        if rank == 0:
            Path(out).write_text(json.dumps(sec))
    except BaseException:
        shutdown(clean=False)
        raise
    shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agent", default="td3_bc")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    single = _time_updates(args.agent, args.batch, args.updates)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = OUT / ".ddp_tmp.json"
    OUT.mkdir(parents=True, exist_ok=True)
    mp.spawn(_worker, args=(args.ranks, port, args, str(out)), nprocs=args.ranks, join=True)
    ddp = json.loads(out.read_text())
    out.unlink()
    rows = {"agent": args.agent, "global_batch": args.batch, "ranks": args.ranks, "threads_total": args.threads,
            "single_ms_per_update": single * 1e3, "ddp_ms_per_update": ddp * 1e3, "overhead_ratio": ddp / single}
    print(f"| layout | ms / update (global batch {args.batch}) |\n|---|---|")
    print(f"| 1 process, {args.threads} threads | {single * 1e3:.2f} |")
    print(f"| {args.ranks} gloo ranks, {max(1, args.threads // args.ranks)} thread each | {ddp * 1e3:.2f} |")
    print(f"ratio DDP / single: {ddp / single:.2f}")
    (OUT / "ddp.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
