"""Parallel collection: env steps/s of one env vs Gymnasium vector envs, with a batched policy forward.

    python experiments/bench/vector_env.py --env Hopper-v5 --steps 20000 --num-envs 1 2 4

Measures collection the way the online loop and dataset generation do it (policy MLP 256-256 on the
observations, then env.step). Prints a table and writes experiments/bench/results/vector_env.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import torch
from gymnasium.vector import AutoresetMode

from rlkit2.networks import DeterministicPolicy

OUT = Path(__file__).parent / "results"


def collect_rate(env_id: str, num_envs: int, steps: int, kind: str) -> float:
    if kind == "single":
        env = gym.make(env_id)
        policy = DeterministicPolicy(env.observation_space.shape[0], env.action_space.shape[0])
        obs, _ = env.reset(seed=0)
        t = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                a = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
                obs, _, te, tr, _ = env.step(a)
                if te or tr:
                    obs, _ = env.reset()
        return steps / (time.perf_counter() - t)
    cls = gym.vector.AsyncVectorEnv if kind == "async" else gym.vector.SyncVectorEnv
    venv = cls([lambda: gym.make(env_id) for _ in range(num_envs)], autoreset_mode=AutoresetMode.SAME_STEP)
    policy = DeterministicPolicy(venv.single_observation_space.shape[0], venv.single_action_space.shape[0])
    obs, _ = venv.reset(seed=list(range(num_envs)))
    t = time.perf_counter()
    with torch.no_grad():
        for _ in range(steps // num_envs):
            a = policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()
            obs, *_ = venv.step(a)
    rate = (steps // num_envs) * num_envs / (time.perf_counter() - t)
    venv.close()
    return rate


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--num-envs", type=int, nargs="+", default=[2, 4])
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [{"kind": "single", "num_envs": 1, "steps_per_s": collect_rate(args.env, 1, args.steps, "single")}]
    for n in args.num_envs:
        for kind in ("sync", "async"):
            rows.append({"kind": kind, "num_envs": n, "steps_per_s": collect_rate(args.env, n, args.steps, kind)})
    base = rows[0]["steps_per_s"]
    print(f"\n{args.env}, {os.cpu_count()} CPUs, policy MLP 256-256\n")
    print("| collection | envs | env steps/s | speed-up |\n|---|---|---|---|")
    for r in rows:
        r["speedup"] = r["steps_per_s"] / base
        print(f"| {r['kind']} | {r['num_envs']} | {r['steps_per_s']:.0f} | {r['speedup']:.2f}x |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vector_env.json").write_text(json.dumps({"env": args.env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
