"""Example (a): train the Q-sarsa agent in your own loop, on a NumPy dataset, with your own replay and logger.

    python examples/train_qsarsa_loop.py --steps 3000 --out /tmp/qsarsa_point

No Hydra, no rlkit2-train: the script makes a dataset with NumPy (examples/point_mass.py stands for your
environment and data), wraps it in a ten-line replay (anything with `sample(batch_size) -> rlkit2.Batch`),
builds the agent with `rlkit2.make`, calls `learner.step()` in a plain for-loop, logs through a callback,
evaluates with `rlkit2.evaluate` and saves the greedy policy with `rlkit2.save_policy`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from point_mass import ENV_ID, HORIZON, make_dataset, random_return, register

import rlkit2


class NumpyReplay:
    """Your own replay: fixed NumPy arrays, uniform sampling. rlkit2 only needs `sample`; `arrays()` gives the
    agent the observation statistics it normalises with, and `next_actions` (a' of each transition, for
    Q-sarsa's SARSA targets) is announced by `with_next_actions`."""

    with_next_actions = True

    def __init__(self, data: dict[str, np.ndarray], seed: int = 0):
        ends = data["terminals"] | data["timeouts"]
        next_actions = np.concatenate([data["actions"][1:], data["actions"][-1:]])
        next_actions[ends] = data["actions"][ends]  # a' is unknown after an episode's last step; masked anyway
        self.data = {k: torch.as_tensor(np.asarray(data[k], np.float32)) for k in
                     ("observations", "actions", "rewards", "next_observations", "terminals")}
        self.data["next_actions"] = torch.as_tensor(next_actions)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.data["observations"])

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.data.items()}

    def sample(self, batch_size: int) -> rlkit2.Batch:
        idx = torch.randint(0, len(self), (batch_size,), generator=self.generator)
        return rlkit2.Batch(**{k: v[idx] for k, v in self.data.items()})


def print_logger(step: int, metrics: dict[str, float]) -> None:
    """Your own logger: any callable. Here: one line per log step."""
    print(f"step {step:6d}  " + "  ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())), flush=True)


def train(steps: int, out: Path, seed: int = 0, log_every: int = 500,
          log: Callable[[int, dict[str, float]], None] = print_logger) -> dict[str, float]:
    torch.manual_seed(seed)
    register()
    env = gym.make(ENV_ID)
    replay = NumpyReplay(make_dataset(episodes=200, seed=seed), seed=seed)
    agent = rlkit2.make("qsarsa", env, replay, seed=seed, hidden=[64, 64], batch_size=128)

    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        metrics = agent.learner.step()  # tensors: read them only when logging (no host sync per step)
        if step % log_every == 0 or step == steps:
            log(step, {k: float(v) for k, v in metrics.items()})
    seconds = time.perf_counter() - t0

    result = rlkit2.evaluate(env, agent.policy, num_episodes=10, seed=10_000)
    policy_path = rlkit2.save_policy(agent, out / "policy.pt", step=steps,
                                     env={"kind": "gym", "id": ENV_ID, "max_episode_steps": HORIZON})
    summary = {"steps": steps, "seconds": seconds, "return": result["eval/return"],
               "random_return": random_return(), "policy": str(policy_path)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("outputs/example_qsarsa_loop"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    summary = train(args.steps, args.out, args.seed, log_every=max(args.steps // 6, 1))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
