"""The fair imitation study: {BC, POIR} x {full observation, POIR's feature set}, BC fine-tuned online with
POIR's online budget, and robomimic's BC-RNN-GMM, under deployment shifts, on held-out episodes.

    python -m experiments.imitation.study run --seed 0          # Lift, one training seed, every policy and cell
    python -m experiments.imitation.study run --seed 1 ...      # seeds side by side: one process (core) each
    python -m experiments.imitation.study run --task can --seed 0   # PickPlaceCan (its smaller grid)
    python -m experiments.imitation.study report                # tables + plots from the committed JSON
    python -m experiments.imitation.study fit --task can        # open-loop action error on the own demos
    python -m experiments.imitation.study run --quick --seed 0 --out /tmp/study --runs /tmp/runs   # smoke run

Every training is an ordinary `rlkit2-train` run (`rlkit2.train.run` on composed overrides), its raw run dir
under `--runs`/<task>/seed<k>/ (outside the repository); the report reads `results/study/<task>.json`, one row per
(policy, cell, seed) with every held-out episode's outcome.

Clean evaluation (why each rule is there):
* each training seed k has its **own demo set**: the scripted expert in the nominal env, collection seed
  DEMO_SEED + k, so seed-to-seed variation includes which demos were drawn;
* each seed is evaluated on its **own held-out episodes** (reset seeds HELD_OUT + 1000 k + i, same for every
  policy of that seed, so policies are compared on the same cube placements, start joints and noise draws).
  No design choice of the agents or of this study looked at these seeds: the planner and fine-tuning settings
  were chosen on the runners' development episodes (`rlkit2.run.common.eval_seed`), which this study does not
  evaluate on (`trainer.eval_episodes=0`);
* intervals: 95 % nested bootstrap over seeds and, within each, its episodes (`rlkit2.stats.nested_bootstrap_ci`);
* reference rows on the same episodes: the zero-action policy and the scripted expert that made the demos
  (nothing trained: `zero_action`, `expert`).

Fairness: BC and POIR's BC prior are the same network (deterministic MLP 256-256, 2000 updates); "features"
gives BC exactly the observation dims POIR's score and proposals use (the preset's `agent.score_dims`) and
POIR's prior the same; BC-online gets POIR's online budget (env steps, updates per episode) in the same
deployment env and learns from its own successful episodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments import provenance
from experiments.imitation.study_plan import POLICIES, TASKS, Budget, Task
from experiments.imitation.study_report import report

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "experiments" / "imitation" / "results" / "study"
RUNS = REPO / "outputs" / "imitation-study"
DEMO_SEED = 1_000
HELD_OUT = 7_000_000


AXES = ("all", "object", "robot", "noise")


def shift_overrides(axis: str, s: float) -> list[str]:
    """Hydra overrides of `env.shift` for one cell `axis:s` (the other axes nominal): `object` widens the
    object's placement range, `robot` perturbs the start joints, `noise` adds Gaussian noise of std s to every
    executed action, `all` does the three at once (envs/robosuite/shifts.py)."""
    if axis not in AXES:
        raise ValueError(f"unknown shift axis {axis!r}; expected one of {AXES}")
    init = s if axis in ("all", "object", "robot") else 0.0
    noise = s if axis in ("all", "noise") else 0.0
    return [f"env.shift.init={init}", f"env.shift.action_noise={noise}",
            f"env.shift.robot_init_scale={0.0 if axis == 'object' else 1.0}",
            f"env.shift.object_init_scale={0.0 if axis == 'robot' else 1.0}"]


def parse_cells(text: str) -> list[tuple[str, float]]:
    """`all:0,object:0.1` -> [("all", 0.0), ("object", 0.1)]."""
    cells = []
    for item in text.split(","):
        axis, _, s = item.partition(":")
        shift_overrides(axis, 0.0)
        cells.append((axis, float(s)))
    return cells


def compose(overrides: list[str]) -> Any:
    """The run config `rlkit2-train` would compose from `overrides`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from rlkit2.train import register_schemas

    register_schemas()
    with initialize_config_module("rlkit2.conf", version_base=None):
        return hydra_compose("config", overrides=overrides)


def features(task: Task = TASKS["lift"]) -> list[int]:
    """The task's feature dims: what its POIR preset scores (and proposes) on."""
    return list(_score_dims(task.presets["poir"]))


@functools.cache
def _score_dims(preset: str) -> tuple[int, ...]:
    return tuple(int(d) for d in compose([f"experiment={preset}"]).agent.score_dims)


def overrides_for(name: str, seed: int, demos: Path, budget: Budget, online_steps: int = 0,
                  task: Task = TASKS["lift"]) -> list[str]:
    """The run's overrides: offline (`online_steps=0`), or the online fine-tuning of `name`'s offline run."""
    p = POLICIES[name]
    feats = "[" + ",".join(map(str, features(task))) + "]"
    extra = {"": [], "bc": [f"agent.obs_dims={feats}"], "poir": [f"agent.prior.obs_dims={feats}"]}[p.features]
    if online_steps or p.role == "poir":  # the POIR presets fine-tune by default: 0 for the offline run
        extra += [f"agent.online_env_steps={online_steps}",
                  f"agent.online_updates_per_episode={budget.online_updates_per_episode}"]
    return [f"experiment={task.presets[p.role]}", f"env.dataset={demos}", f"env.num_demos={budget.demos}",
            f"seed={seed}", f"trainer.total_steps={budget.offline_updates * p.updates_factor}",
            "trainer.eval_episodes=0", "trainer.plot=false", "trainer.progress=false", "env.eval_nominal=false",
            "trainer.checkpoint_every=1000", "resume=true",  # a killed study continues each run where it stopped
            *p.overrides, *extra]


def demo_file(task: Task, seed: int, runs: Path, budget: Budget) -> Path:
    """Training seed `seed`'s own demo set (collected once, nominal env)."""
    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.run.imitation import env_config_object, nominal_env_cfg

    path = runs / f"seed{seed}" / "demos.hdf5"
    if path.is_file():
        import h5py

        with h5py.File(path, "r") as f:
            have = len(f["data"].keys())
        if have != budget.demos:
            raise SystemExit(f"{path} holds {have} demos, this study {budget.demos}: pass another --runs dir")
    else:
        env = env_config_object(nominal_env_cfg(compose([f"experiment={task.presets['poir']}"]).env))
        stats = collect_demos(env, path, budget.demos, seed=DEMO_SEED + seed, progress=False)
        print(f"[study] seed {seed}: {stats.demos} demos ({stats.success_rate:.2f} expert success)", flush=True)
    return path


def train(task: Task, name: str, cell: tuple[str, float] | None, seed: int, runs: Path, budget: Budget) -> Path:
    """The run dir of `name` (offline, or fine-tuned online in `cell`), trained if its policy is not saved yet."""
    from rlkit2.train import run

    p = POLICIES[name]
    demos = demo_file(task, seed, runs, budget)
    if not p.online_from:
        run_dir = runs / f"seed{seed}" / name
        cfg = compose([*overrides_for(name, seed, demos, budget, task=task), *shift_overrides("all", 0.0)])
        if not _finished(run_dir, cfg):
            run(cfg, run_dir)
        return run_dir
    start = train(task, p.online_from, None, seed, runs, budget)
    updates = budget.offline_updates * POLICIES[p.online_from].updates_factor  # the offline run's last checkpoint
    ckpt = start / "checkpoints" / f"step_{updates:09d}.pt"
    axis, s = cell or ("all", 0.0)
    run_dir = runs / f"seed{seed}" / f"{name}_{axis}_s{s:g}"
    cfg = compose([*overrides_for(p.online_from, seed, demos, budget, budget.online_steps, task),
                   *shift_overrides(axis, s), f"init_from={ckpt}"])
    if not _finished(run_dir, cfg):
        run(cfg, run_dir)
    return run_dir


def _finished(run_dir: Path, cfg: Any) -> bool:
    """Whether `run_dir` holds this very run, finished; a finished run of other settings (a --quick run, an older
    budget) is refused rather than evaluated as this one."""
    from omegaconf import OmegaConf

    from rlkit2.run_config import CONFIG_FILE, config_changes

    if not (run_dir / "policy.pt").is_file():
        return False
    saved = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE), resolve=True)
    # the demo file is this seed's own in the same runs dir (checked by `demo_file`); its path may have moved
    changed = [c for c in config_changes(saved, cfg) if not c.startswith(("env.dataset:", "init_from:"))]
    if changed:
        raise SystemExit(f"{run_dir} holds a finished run of other settings ({'; '.join(changed)}): pass another "
                         "--runs dir, or remove it")
    return True


def held_out(task: Task, run_dir: Path | None, cell: tuple[str, float], seed: int, episodes: int,
             reference: str = "") -> dict[str, Any]:
    """On seed `seed`'s held-out episodes of `cell`, the policy saved in `run_dir` (or the `reference` policy:
    "zero" action, or the scripted "expert"): every episode's success, and its cost."""
    from rlkit2.core import EnvironmentLoop, FunctionActor
    from rlkit2.policy import load_policy
    from rlkit2.registry import make_env

    cfg = compose([f"experiment={task.presets['poir']}", *shift_overrides(*cell)])
    first = HELD_OUT + 1000 * seed
    env = make_env(cfg.env, first)
    if reference == "zero":
        still = np.zeros(env.action_space.shape, env.action_space.dtype)
        policy: Any = FunctionActor(lambda _obs: still)
    elif reference == "expert":
        from rlkit2.envs.robosuite.expert import make_scripted_expert

        policy = make_scripted_expert(env, seed=first)
    elif reference:
        raise ValueError(f"unknown reference policy {reference!r}; expected 'zero' or 'expert'")
    else:
        assert run_dir is not None
        policy = load_policy(run_dir)
    t0 = time.perf_counter()
    results = EnvironmentLoop(env, policy).run(episodes, seed=first)
    steps = sum(r.length for r in results)
    return {"success": [int(r.success) for r in results], "first_episode_seed": first,
            "ms_per_step": 1e3 * (time.perf_counter() - t0) / max(steps, 1)}


def run_seed(args: argparse.Namespace) -> None:
    import torch

    from rlkit2.checkpoint import update_json

    torch.set_num_threads(1)
    task = TASKS[args.task]
    budget, runs, path = args.budget, Path(args.runs).resolve() / args.task, Path(args.out) / f"{args.task}.json"
    cells, online_cells = parse_cells(args.cells), parse_cells(args.online_cells) if args.online_cells else []
    done = {(r["policy"], r["axis"], r["shift"], r["seed"])
            for r in (json.loads(path.read_text())["rows"] if path.is_file() else [])}
    todo = [(n, c) for n in args.policies if not POLICIES[n].online_from for c in cells] + \
           [(n, c) for n in args.policies if POLICIES[n].online_from for c in online_cells]
    for name, cell in todo:
        if (name, cell[0], cell[1], args.seed) in done:
            continue
        t0 = time.perf_counter()
        ref = POLICIES[name].reference
        run_dir = None if ref else train(task, name, cell, args.seed, runs, budget)
        row = {"policy": name, "axis": cell[0], "shift": cell[1], "seed": args.seed, **held_out(
            task, run_dir, cell, args.seed, budget.episodes, ref), "seconds": time.perf_counter() - t0}
        print(f"[study] {name} {cell[0]}:{cell[1]:g} seed {args.seed}: success {np.mean(row['success']):.2f} "
              f"({row['seconds']:.0f} s)", flush=True)

        def add(data: dict[str, Any] | None, row: dict[str, Any] = row) -> dict[str, Any]:
            data = data or {"task": task.name, "budget": dataclasses.asdict(budget), "rows": []}
            if data["budget"] != dataclasses.asdict(budget):
                raise SystemExit(f"{path} holds rows of another budget ({data['budget']}); pass --out elsewhere")
            data.update(machine={**provenance.machine(), "cores": _cores()},
                        versions=provenance.versions("robosuite", "mujoco"), held_out_offset=HELD_OUT,
                        demo_seed_offset=DEMO_SEED)
            data["rows"] = sorted([*data["rows"], row], key=lambda r: (r["policy"], r["axis"], r["shift"], r["seed"]))
            return data

        update_json(path, add)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


RUN_ONLY = ("--seed", "--policies", "--cells", "--online-cells", "--episodes", "--quick")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m experiments.imitation.study", description=__doc__.split("\n")[0],
                                 allow_abbrev=False)
    ap.add_argument("command", choices=("run", "report", "fit"))
    ap.add_argument("--task", default="lift", choices=list(TASKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES),
                    help="default: all (%(default)s)")
    ap.add_argument("--cells", help="comma list of axis:strength (axes: all, object, robot, noise); default: the "
                    f"task's ({', '.join(f'{k}: {t.cells}' for k, t in TASKS.items())})")
    ap.add_argument("--online-cells", help="cells the online policies are fine-tuned in (default: the task's)")
    ap.add_argument("--episodes", type=int, help="held-out episodes per policy, cell, seed (default: the task's)")
    ap.add_argument("--quick", action="store_true", help="smoke-size budget (pass --out and --runs elsewhere)")
    ap.add_argument("--out", default=str(RESULTS), help="results dir (default: %(default)s)")
    ap.add_argument("--runs", default=str(RUNS), help="raw run dirs, <runs>/<task>/seed<k>/ (default: %(default)s)")
    args = ap.parse_args(argv)
    # every option is honoured or refused: `fit` fits every seed and BC-family policy under --runs, `report`
    # tables every task under --out
    given = {a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--") and a != "--"}
    only = {"run": set(RUN_ONLY) | {"--task", "--runs", "--out"}, "fit": {"--task", "--runs", "--out"},
            "report": {"--out"}}[args.command]
    if given - only:
        ap.error(f"{', '.join(sorted(given - only))} not used by `{args.command}` (it takes "
                 f"{', '.join(sorted(only))})")
    task = TASKS[args.task]
    if args.episodes is not None and args.episodes <= 0:
        ap.error("--episodes must be positive")
    args.budget = dataclasses.replace(task.budget, episodes=args.episodes or task.budget.episodes)
    args.cells = args.cells or task.cells
    args.online_cells = task.online_cells if args.online_cells is None else args.online_cells
    if args.quick:
        clash = sorted(given & {"--episodes", "--cells", "--online-cells"})
        if clash:
            ap.error(f"--quick sets the smoke test's own {', '.join(clash)}: leave them out")
        args.budget = Budget(demos=4, offline_updates=100, online_steps=80, online_updates_per_episode=5, episodes=2)
        args.cells, args.online_cells = "all:0,all:0.1", "all:0.1"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "run":
        run_seed(args)
    elif args.command == "fit":
        from experiments.imitation.study_fit import fit

        fit(args.task, Path(args.runs).resolve(), Path(args.out))
    else:
        report(Path(args.out))


if __name__ == "__main__":
    main()
