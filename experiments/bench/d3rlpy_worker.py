"""Runs inside the d3rlpy venv (never the project venv: d3rlpy pins an old gymnasium).

Called by experiments/bench/offline.py through subprocess:
  python d3rlpy_worker.py throughput --algo td3_bc --data X.npz --updates 300 --threads 2 --out r.json
`X.npz` holds D4RL-style episode arrays (observations, actions, rewards, terminals, timeouts).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def make_algo(name: str, dataset, device: str = "cpu:0"):
    import d3rlpy

    scaler = d3rlpy.preprocessing.StandardObservationScaler()
    if name == "td3_bc":
        cfg = d3rlpy.algos.TD3PlusBCConfig(batch_size=256, actor_learning_rate=3e-4, critic_learning_rate=3e-4,
                                           alpha=2.5, update_actor_interval=2, observation_scaler=scaler)
    elif name == "iql":
        cfg = d3rlpy.algos.IQLConfig(batch_size=256, actor_learning_rate=3e-4, critic_learning_rate=3e-4,
                                     expectile=0.7, weight_temp=3.0, max_weight=100.0, observation_scaler=scaler,
                                     reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0))
    else:
        raise SystemExit(f"unknown --algo {name} (td3_bc | iql)")
    algo = cfg.create(device=device)
    # fit() fits the scalers itself; the throughput loop calls update() directly, so fit them here.
    for sc in (cfg.observation_scaler, cfg.reward_scaler):
        if sc is not None:
            sc.fit_with_transition_picker(dataset.episodes, dataset.transition_picker)
    algo.build_with_dataset(dataset)
    return algo


def load(path: str):
    import d3rlpy

    z = np.load(path)
    timeouts = z["timeouts"].astype(np.float32).copy()
    terminals = z["terminals"].astype(np.float32)
    timeouts[-1] = 1.0 if terminals[-1] == 0 else timeouts[-1]  # d3rlpy needs the last episode closed
    return d3rlpy.dataset.MDPDataset(z["observations"].astype(np.float32), z["actions"].astype(np.float32),
                                     z["rewards"].astype(np.float32), terminals, timeouts)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["throughput"])
    p.add_argument("--algo", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    import d3rlpy
    import torch

    torch.set_num_threads(a.threads)
    d3rlpy.seed(a.seed)
    dataset = load(a.data)
    algo = make_algo(a.algo, dataset)
    # The same work per update as fit(): sample a transition batch, update (d3rlpy reads metrics each step).
    for _ in range(a.warmup):
        algo.update(dataset.sample_transition_batch(256))
    t0 = time.perf_counter()
    for _ in range(a.updates):
        algo.update(dataset.sample_transition_batch(256))
    dt = time.perf_counter() - t0
    res = {"algo": a.algo, "updates": a.updates, "seconds": dt, "updates_per_s": a.updates / dt,
           "d3rlpy": d3rlpy.__version__, "torch": torch.__version__, "threads": a.threads}
    with open(a.out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
