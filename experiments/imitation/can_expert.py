"""The scripted PickPlaceCan expert's success rate and episode length, nominal and under deployment shifts.

    OMP_NUM_THREADS=1 python experiments/imitation/can_expert.py                 # 50 episodes per condition
    OMP_NUM_THREADS=1 python experiments/imitation/can_expert.py --episodes 5 --out /tmp/can_expert.json

Conditions (envs/robosuite/config.py ShiftConfig; the other axes stay nominal):
  nominal; object: env.shift.init=0.1 env.shift.robot_init_scale=0 (the can's placement, clipped to bin 1);
  robot: env.shift.init=0.1 env.shift.object_init_scale=0 (start joints, std 0.12 rad); noise:
  env.shift.action_noise=0.1; all: init 0.1 (robot and object) + action_noise 0.1.
Episode i of every condition uses seed `--seed + i` (same can placements where the placement is nominal).
Per condition: success rate (with its binomial standard error), mean / max length of the successful episodes,
mean length of all episodes (failures count the horizon), how many episodes needed a recovery (re-grasp after a
slip or an off-target landing, a quarter turn of the fingers at a wall, a new hover after drifting off the
can) and how many of each, and each failure's seed, the expert's phase at the horizon and its recoveries.
Writes a table to stdout and `--out` (JSON, with machine, wall time, versions).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
OUT = Path(__file__).resolve().parent / "results" / "can_expert.json"
CONDITIONS: dict[str, dict[str, Any]] = {
    "nominal": {},
    "object": {"init": 0.1, "robot_init_scale": 0.0},
    "robot": {"init": 0.1, "object_init_scale": 0.0},
    "noise": {"action_noise": 0.1},
    "all": {"init": 0.1, "action_noise": 0.1},
}
PHASES = ("approach", "descend", "grasp", "lift", "carry", "lower", "release", "retreat")


def run_episode(env: Any, expert: Any, seed: int) -> dict[str, Any]:
    """One expert episode; `recoveries`: the expert's recovery counts (ScriptedCanExpert.events)."""
    obs, _ = env.reset(seed=seed)
    expert.observe_first(obs)
    length, success = 0, False
    while True:
        action = expert.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        expert.observe(action, obs, reward, terminated, truncated)
        length += 1
        success = bool(info["success"])
        if terminated or truncated:
            break
    return {"seed": seed, "success": success, "length": length, "recoveries": dict(expert.events),
            "final_phase": PHASES[int(expert.phase)]}


def summarise(episodes: list[dict[str, Any]], horizon: int) -> dict[str, Any]:
    n = len(episodes)
    ok = [e for e in episodes if e["success"]]
    p = len(ok) / n
    return {
        "episodes": n, "success_rate": p, "success_se": float(np.sqrt(p * (1 - p) / n)),
        "mean_length_success": float(np.mean([e["length"] for e in ok])) if ok else None,
        "max_length_success": int(max(e["length"] for e in ok)) if ok else None,
        "mean_length_all": float(np.mean([e["length"] for e in episodes])),
        "with_recovery": sum(sum(e["recoveries"].values()) > 0 for e in episodes),
        "recoveries": {k: sum(e["recoveries"][k] for e in episodes) for k in episodes[0]["recoveries"]},
        "failures": [{"seed": e["seed"], "final_phase": e["final_phase"], "recoveries": e["recoveries"]}
                     for e in episodes if not e["success"]],
        "horizon": horizon,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from experiments import provenance

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=10_000)
    p.add_argument("--horizon", type=int, default=400, help="conf/env/robosuite/can.yaml's")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help=f"comma-separated, of {list(CONDITIONS)}")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    names = [c for c in args.conditions.split(",") if c]
    unknown = sorted(set(names) - set(CONDITIONS))
    if unknown or args.episodes < 1:
        p.error(f"unknown condition(s) {unknown} (known: {list(CONDITIONS)})" if unknown else "--episodes >= 1")

    import torch

    torch.set_num_threads(1)  # the CPU is shared; robosuite itself is single-threaded
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, ShiftConfig, make_robosuite_env
    from rlkit2.envs.robosuite.can_expert import ScriptedCanExpert

    results: dict[str, Any] = {}
    start = time.time()
    for name in names:
        t0 = time.time()
        env = make_robosuite_env(RobosuiteEnvConfig(task="PickPlaceCan", id="robosuite-can", horizon=args.horizon,
                                                    shift=ShiftConfig(**CONDITIONS[name])), seed=args.seed)
        expert = ScriptedCanExpert.from_env(env)
        episodes = [run_episode(env, expert, args.seed + i) for i in range(args.episodes)]
        env.close()
        results[name] = {"shift": CONDITIONS[name], **summarise(episodes, args.horizon),
                         "wall_s": round(time.time() - t0, 1), "per_episode": episodes}
        r = results[name]
        print(f"{name:8s} success {r['success_rate']:.2f} ({sum(e['success'] for e in episodes)}/{args.episodes}) "
              f"len {r['mean_length_success']}  [{r['wall_s']} s]", flush=True)

    print(f"\n{'condition':10s} {'success':>12s} {'len (succ.)':>12s} {'max len':>8s} {'len (all)':>10s} "
          f"{'recovered':>10s}  {'slip/wall/off/drift':>19s}  failures (seed: phase at the horizon)")
    for name, r in results.items():
        fails = ", ".join(f"{f['seed']}: {f['final_phase']}" for f in r["failures"]) or "-"
        mean_ok = f"{r['mean_length_success']:.1f}" if r["mean_length_success"] is not None else "-"
        print(f"{name:10s} {r['success_rate']:6.2f} ± {r['success_se']:.2f} {mean_ok:>12s} "
              f"{str(r['max_length_success']):>8s} {r['mean_length_all']:10.1f} {r['with_recovery']:10d}  "
              f"{'/'.join(str(v) for v in r['recoveries'].values()):>19s}  {fails}")
    wall = time.time() - start
    report = {
        "command": "python experiments/imitation/can_expert.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "task": "PickPlaceCan", "robot": "Panda", "controller": "OSC_POSE", "episodes": args.episodes,
        "seeds": [args.seed, args.seed + args.episodes - 1], "wall_s": round(wall, 1),
        "machine": {**provenance.machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "")},
        "versions": provenance.versions("robosuite", "mujoco", "gymnasium"), "conditions": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwall time {wall:.0f} s -> {args.out}")
    return report


if __name__ == "__main__":
    main()
