"""Online TD3/SAC on Gymnasium MuJoCo: learning against a random policy, env steps/s and updates/s.

    python experiments/bench/online.py --env Hopper-v5 --steps 30000 --agents sac td3

Prints a table and writes JSON (experiments/bench/results/online.json) and the learning curves (PNG).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlkit2.registry import get_agent, make_env
from rlkit2.replay import TransitionReplay
from rlkit2.run.common import env_spec
from rlkit2.train import compose as compose_config

OUT = Path(__file__).parent / "results"


def random_policy_return(env_id: str, episodes: int = 10, seed: int = 0) -> float:
    env = gym.make(env_id)
    env.action_space.seed(seed)
    rets = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        done, ret = False, 0.0
        while not done:
            _, r, te, tr, _ = env.step(env.action_space.sample())
            ret, done = ret + float(r), te or tr
        rets.append(ret)
    return float(np.mean(rets))


def env_steps_per_s(env_id: str, steps: int = 5000) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    t = time.perf_counter()
    for _ in range(steps):
        _, _, te, tr, _ = env.step(env.action_space.sample())
        if te or tr:
            env.reset()
    return steps / (time.perf_counter() - t)


def updates_per_s(agent: str, env_id: str, updates: int = 500) -> float:
    cfg = compose_config([f"agent={agent}", f"env.id={env_id}"])
    entry = get_agent(agent)
    env = make_env(cfg.env, 0)
    spec = env_spec(env)
    replay = TransitionReplay(10_000, spec.obs_dim, spec.act_dim)
    rng = np.random.default_rng(0)
    for _ in range(10_000):
        replay.add(rng.normal(size=spec.obs_dim), rng.uniform(-1, 1, spec.act_dim), 1.0,
                   rng.normal(size=spec.obs_dim), False)
    from rlkit2.config import to_config

    learner = entry.builder(to_config(cfg.agent, entry.config_cls), spec, replay, 0).learner
    for _ in range(20):
        learner.step()
    t = time.perf_counter()
    for _ in range(updates):
        learner.step()
    return updates / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--agents", nargs="+", default=["sac", "td3"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    from rlkit2.train import run

    rows = []
    rand = random_policy_return(args.env)
    for agent in args.agents:
        run_dir = OUT / f"online_{agent}_{args.env}_s{args.seed}"
        cfg = compose_config([f"agent={agent}", f"env.id={args.env}", f"trainer.total_steps={args.steps}",
                              f"trainer.eval_every={max(args.steps // 10, 1)}", "trainer.eval_episodes=5",
                              "trainer.learning_starts=5000", f"trainer.threads={args.threads}",
                              "logger.console=false", f"seed={args.seed}", f"trainer.checkpoint_every={args.steps}"])
        final = run(cfg, run_dir)
        rows.append({"agent": agent, "env": args.env, "env_steps": args.steps, "return": final["eval/return"],
                     "return_std": final["eval/return_std"], "random_return": rand,
                     "train_steps_per_s": final["time/steps_per_s"],
                     "updates_per_s": updates_per_s(agent, args.env), "env_steps_per_s": env_steps_per_s(args.env)})
    print("\n| agent | env | env steps | return | random | train steps/s | updates/s | env steps/s (random) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['agent']} | {r['env']} | {r['env_steps']} | {r['return']:.1f} ± {r['return_std']:.1f} | "
              f"{r['random_return']:.1f} | {r['train_steps_per_s']:.0f} | {r['updates_per_s']:.0f} | "
              f"{r['env_steps_per_s']:.0f} |")
    (OUT / f"online_{args.env}.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
