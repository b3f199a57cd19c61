"""Choose the expert and medium behaviour policies of a SAC run and ship them (with medium-replay's snapshots).

Selection never looks at the numbers the cards report:

1. the `--candidates` snapshots with the best training-time evaluation (5 episodes) are each re-evaluated on
   10 greedy episodes from *selection* seeds (70,000 + i); the expert is the best of them;
2. medium is the snapshot before the expert whose selection-seed return is closest to a third of the expert's
   (D4RL's recipe); candidates are the snapshots whose training-time evaluation is within 0.6-1.5x that third
   (SAC's return jumps: on Hopper the earliest snapshot past the third returns 2.35x it);
3. medium-replay's snapshots are the snapshots before medium taken every 10k env steps (the run snapshots
   every 5k; every other one halves the package's size, and each is rolled out for 10k rows);
4. `rlkit2-data`'s exporter then measures each shipped policy's card return on its own *card* seeds (50,000 + i),
   10 episodes, so the card is not the maximum of the selection's noise.

    python experiments/offline/behaviour/ship.py hopper            # selection + export into rlkit2/data/policies
    python experiments/offline/behaviour/ship.py hopper --dry-run  # selection only

Writes `experiments/offline/behaviour/selection-<env>.json` (every evaluation done, with seeds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rlkit2 import checkpoint as ckpt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from carry import gen_config  # noqa: E402

SELECTION_SEED, EPISODES = 70_000, 10
REPLAY_SNAPSHOT_EVERY = 10_000
MEDIUM_FRACTION = 1.0 / 3.0


def evaluate(path: Path, gym_id: str, episodes: int, seed: int) -> tuple[float, float]:
    from rlkit2.envs.gym_mujoco import GymEnvConfig

    from rlkit2.core import evaluate as run_episodes
    from rlkit2.data.behaviour import load_snapshot_agent
    from rlkit2.registry import make_env

    agent = load_snapshot_agent(path)
    env = make_env(GymEnvConfig(id=gym_id, max_episode_steps=1000), seed)
    try:
        ev = run_episodes(env, agent.policy, episodes, seed=seed)
    finally:
        env.close()
    return float(ev["eval/return"]), float(ev["eval/return_std"])


def select(env: str, data_dir: str, candidates: int) -> dict[str, Any]:
    cfg = gen_config(env, data_dir)
    snaps = []
    for step, path in ckpt.list_checkpoints(cfg.work_dir / "policies"):
        snaps.append({"step": step, "path": path, "train_eval": float(ckpt.load(path)["eval_return"])})
    if not snaps:
        raise SystemExit(f"no snapshots in {cfg.work_dir / 'policies'}")
    evaluated: dict[int, dict[str, Any]] = {}

    def sel_eval(s: dict[str, Any]) -> float:
        if s["step"] not in evaluated:
            t0 = time.perf_counter()
            mean, std = evaluate(s["path"], cfg.gym_id, EPISODES, SELECTION_SEED)
            evaluated[s["step"]] = {"step": s["step"], "train_eval_5ep": s["train_eval"], "select_mean": mean,
                                    "select_std": std}
            print(f"  step {s['step']:>7}: train-time {s['train_eval']:8.1f}  selection {mean:8.1f} ± {std:6.1f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
        return float(evaluated[s["step"]]["select_mean"])

    print(f"{env}: {len(snaps)} snapshots, up to step {snaps[-1]['step']}; expert candidates:")
    top = sorted(snaps, key=lambda s: -s["train_eval"])[:candidates]
    expert = max(top, key=sel_eval)
    target = MEDIUM_FRACTION * sel_eval(expert)
    print(f"medium: the snapshot before step {expert['step']} closest to {target:.1f}")
    before = [s for s in snaps if s["step"] < expert["step"]]
    near = [s for s in before if 0.6 * target <= s["train_eval"] <= 1.5 * target]
    if not near:
        raise SystemExit(f"{env}: no snapshot before the expert returns near a third of its return")
    medium = min(near, key=lambda s: abs(sel_eval(s) - target))
    return {"env": env, "gym_id": cfg.gym_id, "trained_env_steps": snaps[-1]["step"],
            "selection_seed": SELECTION_SEED, "episodes": EPISODES, "medium_fraction": MEDIUM_FRACTION,
            "expert_step": expert["step"], "medium_step": medium["step"], "medium_target": target,
            "replay_snapshot_steps": [s["step"] for s in before
                                      if s["step"] < medium["step"] and s["step"] % REPLAY_SNAPSHOT_EVERY == 0],
            "evaluations": sorted(evaluated.values(), key=lambda e: e["step"]),
            "paths": {str(s["step"]): str(s["path"]) for s in snaps}}


def ship(sel: dict[str, Any], out_dir: str, learning_starts: int) -> None:
    from rlkit2.data.shipped_export import export_policy

    roles = {"expert": sel["expert_step"], "medium": sel["medium_step"]}
    roles.update({f"snapshot-{step}": step for step in sel["replay_snapshot_steps"]})
    for role, step in roles.items():
        t0 = time.perf_counter()
        path = export_policy(sel["paths"][str(step)], sel["env"], role, out_dir, seed=0,
                             learning_starts=learning_starts)
        card = json.loads(path.with_suffix(".json").read_text())
        print(f"  {role:>16} (step {step:>7}): card return {card['return_mean']:8.1f} ± {card['return_std']:6.1f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("env", choices=["hopper", "walker2d", "halfcheetah"])
    ap.add_argument("--data-dir", default="/work/bg/data")
    ap.add_argument("--candidates", type=int, default=6, help="expert candidates re-evaluated (best train-time)")
    ap.add_argument("--out-dir", default=str(HERE.parents[2] / "rlkit2" / "data" / "policies"))
    ap.add_argument("--dry-run", action="store_true", help="select only; export nothing")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    sel = select(args.env, args.data_dir, args.candidates)
    record = {k: v for k, v in sel.items() if k != "paths"}
    (HERE / f"selection-{args.env}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"expert step {sel['expert_step']}, medium step {sel['medium_step']}, "
          f"{len(sel['replay_snapshot_steps'])} replay snapshots")
    if not args.dry_run:
        ship(sel, args.out_dir, gen_config(args.env, args.data_dir).learning_starts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
