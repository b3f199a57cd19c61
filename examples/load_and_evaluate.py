"""Example (b): load a saved policy and evaluate it in its environment.

    python examples/load_and_evaluate.py outputs/2026-11-25/12-00-00_qsarsa_hopper-medium-v2   # any run dir
    python examples/load_and_evaluate.py /tmp/qsarsa_point/policy.pt                          # a policy file
    python examples/load_and_evaluate.py                                                        # demo: see below

`rlkit2.load_policy` takes a run dir (its policy.pt), a policy file, or a checkpoint (file or folder):
what comes back is `policy(observation) -> action` with its observation normalisation inside. No
training state, no Hydra. The policy's info names the env it was trained on, so `rlkit2.make_env`
rebuilds it.

Without a path, the script first makes one: it registers a user-defined Gymnasium env (PointMass-v0,
examples/point_mass.py), writes a D4RL-format HDF5 dataset for it, and trains an offline agent on the
pair through the same config system `rlkit2-train` uses (`env.id=PointMass-v0 env.dataset=<file>`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from point_mass import ENV_ID, HORIZON, make_dataset, random_return, register

import rlkit2


def train_demo_run(run_dir: Path, agent: str = "td3_bc", steps: int = 2000) -> Path:
    """Your env + your D4RL file -> an offline agent, as `rlkit2-train agent=td3_bc env.id=... env.dataset=...`."""
    from rlkit2.data import write_d4rl
    from rlkit2.train import compose, run

    register()  # the env must be registered in the process that trains and in the one that evaluates
    dataset = write_d4rl(run_dir / "point_mass_mixed.hdf5", make_dataset(episodes=200),
                         metadata={"env_id": ENV_ID})
    cfg = compose([f"agent={agent}", "env=hopper", f"env.id={ENV_ID}", f"env.dataset={dataset}",
                   f"env.max_episode_steps={HORIZON}", "agent.hidden=[64,64]", f"trainer.total_steps={steps}",
                   f"trainer.eval_every={steps}", f"trainer.log_every={max(steps // 4, 1)}",
                   f"trainer.checkpoint_every={steps}", "trainer.eval_episodes=5", "trainer.progress=false",
                   "trainer.plot=false", "trainer.threads=1"])
    run(cfg, run_dir)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="run dir, policy.pt or checkpoint")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2000, help="demo run's training steps (no path given)")
    parser.add_argument("--out", type=Path, default=Path("outputs/example_load_and_evaluate"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    register()  # a no-op for the built-in envs; PointMass-v0 needs it

    path = args.path or train_demo_run(args.out, steps=args.steps)
    policy, info = rlkit2.load_policy(path, with_info=True)
    env = rlkit2.make_env(info["env"], seed=0)
    result = rlkit2.evaluate(env, policy, num_episodes=args.episodes, seed=10_000)
    summary = {"policy": str(path), "agent": info.get("agent"), "env": info["env"]["id"],
               "trained_steps": info.get("step"), "return": result["eval/return"],
               "return_std": result["eval/return_std"]}
    if info["env"]["id"] == ENV_ID:
        summary["random_return"] = random_return(args.episodes)
    print(json.dumps(summary, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evaluation.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
