"""Collect robomimic-format demonstrations with a task's scripted expert in the *nominal* env.

    python -m rlkit2.data.collect_demos --out demos/lift.hdf5 --num-demos 50 --seed 0
    python -m rlkit2.data.collect_demos --task PickPlaceCan --out demos/can.hdf5 --num-demos 50

The expert is picked by `env.task` (rlkit2.envs.robosuite.expert.SCRIPTED_TASKS: Lift, PickPlaceCan); a task
without one is refused with the list of those that have one.

Only successful episodes are kept (as in robomimic's datasets); the expert's success rate over
all attempts is reported. The file records the env's obs/object layout (data.attrs["object_obs_layout"]),
which `read_robomimic(..., object_layout=)` checks against the env it is loaded for. The file
appears only when collection completes (temp file + rename).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rlkit2.data.robomimic import Demo
from rlkit2.data.robomimic_writer import RobomimicWriter

# The presets' horizons (conf/env/robosuite/{lift,can}.yaml): the CLI's default per task
DEFAULT_HORIZONS = {"Lift": 200, "PickPlaceCan": 400}


@dataclasses.dataclass
class CollectStats:
    path: str
    demos: int
    attempts: int
    transitions: int
    success_rate: float  # over all attempts
    mean_length: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rollout_demo(env: Any, actor: Any, seed: int) -> tuple[Demo, bool]:
    """One episode of `actor` in the robosuite adapter `env`, recorded in robomimic's layout."""
    keys = env.obs_keys
    obs, _ = env.reset(seed=seed)
    actor.observe_first(obs)
    obs_rec: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    next_rec: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    actions, rewards, dones, states = [], [], [], []
    success = False
    while True:
        raw = env.raw_obs_dict()
        states.append(env.sim_state())
        action = actor.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        nraw = env.raw_obs_dict()
        for k in keys:
            obs_rec[k].append(raw[k])
            next_rec[k].append(nraw[k])
        actions.append(np.asarray(action, np.float64))
        rewards.append(reward)
        success = bool(info["success"])
        dones.append(float(success))
        actor.observe(action, obs, reward, terminated, truncated)
        if terminated or truncated:
            break
    demo = Demo({k: np.stack(v) for k, v in obs_rec.items()}, np.stack(actions), np.asarray(rewards, np.float64),
                np.asarray(dones, np.int64), {k: np.stack(v) for k, v in next_rec.items()}, np.stack(states))
    return demo, success


def collect_demos(env_cfg: Any, out: str | Path, num_demos: int, *, seed: int = 0, expert_noise: float = 0.0,
                  max_attempts: int | None = None, progress: bool = True) -> CollectStats:
    """Collect `num_demos` successful demos of the task's scripted expert in the nominal version of `env_cfg`."""
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, ShiftConfig, make_robosuite_env
    from rlkit2.envs.robosuite.expert import check_scripted_task, make_scripted_expert

    check_scripted_task(str(env_cfg.task))  # before building the env: refused fast, with the tasks that have one
    # Demonstrations come from the nominal env only: drop any shift the config carries.
    fields = {f.name: getattr(env_cfg, f.name) for f in dataclasses.fields(RobosuiteEnvConfig) if f.name != "shift"}
    nominal = RobosuiteEnvConfig(**{**fields, "obs_keys": list(fields["obs_keys"])}, shift=ShiftConfig())
    env = make_robosuite_env(nominal, seed=seed)
    expert = make_scripted_expert(env, noise=expert_noise, seed=seed)
    max_attempts = max_attempts or 3 * num_demos
    attempts, lengths = 0, []
    with RobomimicWriter(out, env.env_args(), object_layout=env.object_layout()) as writer:
        bar = tqdm(total=num_demos, desc="scripted demos", disable=not progress)
        while writer.num_demos < num_demos:
            if attempts >= max_attempts:
                raise RuntimeError(f"scripted expert succeeded {writer.num_demos} times in {attempts} attempts; "
                                   f"needed {num_demos} (no file written)")
            demo, ok = rollout_demo(env, expert, seed=seed * 100_003 + attempts)
            attempts += 1
            if ok:
                writer.add(demo)
                lengths.append(len(demo))
                bar.update(1)
            bar.set_postfix(success=f"{writer.num_demos / attempts:.2f}")
        bar.close()
        n = writer.num_demos
        writer.set_masks({"train": [f"demo_{i}" for i in range(n - max(1, n // 10))],
                          "valid": [f"demo_{i}" for i in range(n - max(1, n // 10), n)]})
        total = writer.total
    env.close()
    return CollectStats(str(out), num_demos, attempts, total, num_demos / attempts, float(np.mean(lengths)))


def main(argv: list[str] | None = None) -> None:
    from rlkit2.envs.robosuite import RobosuiteEnvConfig
    from rlkit2.envs.robosuite.expert import SCRIPTED_TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--task", default="Lift", choices=SCRIPTED_TASKS)
    p.add_argument("--num-demos", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--horizon", type=int, default=None,
                   help=f"max steps per episode (default: the task's conf/env/robosuite preset, {DEFAULT_HORIZONS})")
    p.add_argument("--expert-noise", type=float, default=0.0)
    args = p.parse_args(argv)
    horizon = args.horizon if args.horizon is not None else DEFAULT_HORIZONS[args.task]
    stats = collect_demos(RobosuiteEnvConfig(task=args.task, horizon=horizon), args.out, args.num_demos,
                          seed=args.seed, expert_noise=args.expert_noise)
    print(json.dumps(stats.as_dict(), indent=2))


if __name__ == "__main__":
    main()
