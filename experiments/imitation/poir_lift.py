"""BC vs POIR (offline) vs POIR (online fine-tuned) on robosuite Lift, per deployment-shift axis and strength.

    python experiments/imitation/poir_lift.py --seed 0                    # one seed's cells (background)
    python experiments/imitation/poir_lift.py --seed 1 --cells all:0.1,all:0.2
    python experiments/imitation/poir_lift.py --report                    # merge seeds: results.json + plot
    python experiments/imitation/poir_lift.py --ablate                    # planner ablations (seed 0 checkpoint)
    python experiments/imitation/poir_lift.py --curve --cells all:0.1 --online-steps 3000   # success vs online steps
    python experiments/imitation/poir_lift.py --quick --out /tmp/poir_quick   # a smoke run (minutes)

Shift axes (a cell is `axis:s`): `object` = cube placement range +-(3 + 100 s) cm; `robot` = start-joint noise
std 0.02 + s rad; `noise` = Gaussian noise of std s on every executed action; `all` = the three at once.
Scaled down for a shared 2-core CPU (torch.set_num_threads(1)): 30 scripted demos from the nominal env
(shared by all seeds), 2000 offline updates, 2000 online env steps per fine-tuned cell, 40 evaluation
episodes (horizon 80) per cell. Everything runs through the `rlkit2-train` machinery (`rlkit2.train.run`
with the `poir_lift` preset): per seed one offline POIR run, then per cell either an online fine-tuning run
resumed from the offline checkpoint (axes in --online) or an offline-only evaluation. "BC" is POIR's own prior
(the BC policy inside the offline checkpoint), evaluated on the same episode seeds as POIR, so BC vs POIR
differ only by the planner.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

AXES = ("all", "object", "robot", "noise")
# a fine-tuned cell's results; --redo-online TAG keeps the previous ones under `<key>_TAG`
ONLINE_KEYS = ("poir_online", "poir_online_act_ms", "online_episodes", "online_episodes_won", "best_arm",
               "arm_episodes", "arm_won")
DEFAULT_CELLS = "all:0,all:0.05,all:0.1,all:0.2,object:0.2,robot:0.2,noise:0.2,object:0.1,robot:0.1,noise:0.1"


def _read_rows(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def _append_row(path: Path, row: dict[str, Any]) -> None:
    """Re-read before appending: ablations of several seeds may share the file, each in its own process."""
    from rlkit2.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, json.dumps([*_read_rows(path), row], indent=2).encode())


def shift_overrides(axis: str, s: float) -> list[str]:
    """Hydra overrides of `env.shift` for one axis at strength s (the other axes at zero)."""
    if axis not in AXES:
        raise ValueError(f"unknown shift axis {axis!r}; expected one of {AXES}")
    init = s if axis in ("all", "object", "robot") else 0.0
    noise = s if axis in ("all", "noise") else 0.0
    return [f"env.shift.init={init}", f"env.shift.action_noise={noise}",
            f"env.shift.robot_init_scale={0.0 if axis == 'object' else 1.0}",
            f"env.shift.object_init_scale={0.0 if axis == 'robot' else 1.0}"]


def parse_cells(text: str) -> list[tuple[str, float]]:
    cells = []
    for item in text.split(","):
        axis, _, s = item.partition(":")
        shift_overrides(axis, 0.0)
        cells.append((axis, float(s)))
    return cells


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from rlkit2.train import register_schemas

    register_schemas()
    with initialize_config_module("rlkit2.conf", version_base=None):
        return hydra_compose("config", overrides=overrides)


def load_offline_agent(cfg, checkpoint: Path):
    """The POIR agent of the offline checkpoint (its learner holds the BC prior)."""
    from rlkit2 import checkpoint as ckpt
    from rlkit2.config import to_config
    from rlkit2.core import EnvSpec
    from rlkit2.data.robomimic import read_robomimic, to_transitions
    from rlkit2.registry import get_agent
    from rlkit2.replay import TransitionReplay

    entry = get_agent("poir")
    ds = read_robomimic(cfg.env.dataset, obs_keys=list(cfg.env.obs_keys), max_demos=int(cfg.env.num_demos))
    replay = TransitionReplay.from_arrays(to_transitions(ds, list(cfg.env.obs_keys)))
    agent = entry.builder(to_config(cfg.agent, entry.config_cls), EnvSpec(replay.obs_dim, replay.act_dim),
                          replay, int(cfg.seed))
    lr = agent.learner
    lr.load_state_dict(ckpt.load(checkpoint)["learner"])
    # An offline checkpoint's reference sets are the demo states: rebuilt here in the configured score_dims
    # (the same tensors unless an ablation changes score_dims).
    lr.reference = lr.demo_reference = lr._features(torch.as_tensor(replay.arrays()["observations"]))
    return agent, replay


class NearestDemoActor:
    """Ablation: the expert proposals alone (the nearest demo state's action), no model, no planning."""

    def __init__(self, learner: Any):
        self.learner = learner

    def observe_first(self, observation: Any) -> None:
        pass

    def observe(self, *args: Any) -> None:
        pass

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observation), dtype=torch.float32).reshape(1, -1)
        return self.learner.expert_action(obs)[0].numpy()


def feature_bc_actor(learner: Any, replay: Any, steps: int, seed: int) -> Any:
    """Ablation: BC (the prior's config and update count) trained on the score's features only (no planner):
    does giving BC the position-invariant inputs alone explain POIR's gain?"""
    import dataclasses

    from rlkit2.actors import TorchPolicyActor
    from rlkit2.agents.bc.learner import BCLearner
    from rlkit2.core import EnvSpec

    config = dataclasses.replace(learner.config.prior, obs_dims=learner.score_dims.tolist())
    torch.manual_seed(seed)
    bc = BCLearner(config, EnvSpec(learner.obs_dim, learner.act_dim), replay)
    for _ in range(steps):
        bc.step()
    return TorchPolicyActor(bc.policy)


def perturbed_demo_states(replay, n: int) -> np.ndarray:
    """`n` demo states (fixed draw) plus Gaussian noise of std 0.02: where the planner's cost is measured."""
    obs = replay.arrays()["observations"]
    idx = np.random.default_rng(0).integers(0, len(obs), n)
    return obs[idx] + np.random.default_rng(1).normal(0, 0.02, obs[idx].shape).astype(np.float32)


def measure_latency(agent, replay, threads: int, n: int = 200) -> dict[str, float]:
    torch.set_num_threads(threads)
    perturbed = perturbed_demo_states(replay, n)
    agent.policy.reset_latency()
    for o in perturbed[:10]:
        agent.policy.act(o)  # warm-up
    agent.policy.reset_latency()
    for o in perturbed:
        agent.policy.act(o)
    out = agent.policy.latency_ms()
    torch.set_num_threads(1)
    return {"threads": threads, "act_ms_mean": out["act_ms"], "act_ms_p95": out["act_ms_p95"]}


def arm_summary(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The planner arm the fine-tuned policy deploys and each arm's online episodes / successes."""
    if not episodes or "online/best_arm" not in episodes[-1]:
        return {}
    last = episodes[-1]
    arms = sorted({int(k[len("online/arm"):].split("_")[0]) for k in last if k.endswith("_episodes")
                   and k.startswith("online/arm")})
    tried = [int(last[f"online/arm{k}_episodes"]) for k in arms]
    won = [int(sum(m["online/episode_success"] for m in episodes if int(m.get("online/arm", -1)) == k)) for k in arms]
    return {"best_arm": int(last["online/best_arm"]), "arm_episodes": tried, "arm_won": won}


def arm_latency(agent, replay, n: int = 200) -> list[dict[str, Any]]:
    """Per-step cost of each planner arm (1 thread): `n` planner calls on perturbed demo states."""
    import dataclasses

    torch.set_num_threads(1)
    states = torch.as_tensor(perturbed_demo_states(replay, n))
    lr, rows = agent.learner, []
    for k, arm in enumerate(lr.arms):
        act = (lambda o, arm=arm: agent.policy.planner.plan(o, arm)) if arm.plan else \
            (lambda o: lr.prior(o[None])[0])
        for o in states[:10]:
            act(o)  # warm-up
        times = []
        for o in states:
            t = time.perf_counter()
            with torch.no_grad():
                act(o)
            times.append(time.perf_counter() - t)
        ms = np.asarray(times) * 1e3
        rows.append({"arm": k, **dataclasses.asdict(arm), "act_ms_mean": float(ms.mean()),
                     "act_ms_p95": float(np.percentile(ms, 95))})
    return rows


def se(p: float | None, n: int) -> float | None:
    """Binomial standard error of a success rate measured on n episodes."""
    return None if p is None else float(np.sqrt(p * (1 - p) / n))


def run_seed(args: argparse.Namespace, out: Path) -> None:
    from rlkit2.envs.robosuite import RobosuiteEnvConfig

    from rlkit2.actors import TorchPolicyActor
    from rlkit2.core import evaluate
    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.logging import read_metrics
    from rlkit2.registry import make_env
    from rlkit2.run.common import eval_seed
    from rlkit2.train import run

    base = compose(["experiment=poir_lift"])
    demos = out / "demos.hdf5"
    if not demos.exists():  # one demo set for every seed (collected with seed 0)
        stats = collect_demos(RobosuiteEnvConfig(horizon=int(base.env.horizon)), demos, int(base.env.num_demos),
                              seed=0)
        (out / "demos.json").write_text(json.dumps({**stats.as_dict(), "path": "demos.hdf5"}, indent=2))
    sdir = out / f"seed{args.seed}"
    sdir.mkdir(parents=True, exist_ok=True)
    common = ["experiment=poir_lift", f"env.dataset={demos}", f"seed={args.seed}", "trainer.plot=false",
              f"trainer.eval_episodes={args.episodes}", f"trainer.total_steps={args.offline_steps}",
              "trainer.progress=false", "env.eval_nominal=false", *args.extra]
    t0 = time.time()
    offline_dir = sdir / "poir_offline"
    ckpt_file = offline_dir / "checkpoints" / f"step_{args.offline_steps:09d}.pt"
    if not ckpt_file.exists():
        offline_final = run(compose([*common, *shift_overrides("all", 0.0), "agent.online_env_steps=0"]),
                            offline_dir)
        (offline_dir / "final.json").write_text(json.dumps(offline_final, indent=2))
    offline_final = json.loads((offline_dir / "final.json").read_text())
    rows_file = sdir / "rows.json"
    rows = _read_rows(rows_file)
    online_axes = set(args.online.split(",")) if args.online else set()
    redo = args.redo_online
    for axis, s in parse_cells(args.cells):
        old = [r for r in rows if (r["axis"], r["shift"]) == (axis, s)]
        fine_tuned = old and old[0]["poir_online"] is not None and (not redo or f"poir_online_{redo}" in old[0])
        if old and (fine_tuned or axis not in online_axes or s == 0):
            continue
        rows = [r for r in rows if (r["axis"], r["shift"]) != (axis, s)]  # redone with fine-tuning
        # results of earlier fine-tuning versions (suffix _v<k>) stay beside the new ones
        carried = {k: v for k, v in old[0].items() if re.search(r"_v\d+$", k)} if old else {}
        if redo and old and old[0]["poir_online"] is not None:
            carried.update({f"{k}_{redo}": old[0][k] for k in ONLINE_KEYS if k in old[0]})
        shift = shift_overrides(axis, s)
        cfg = compose([*common, *shift])
        agent, _ = load_offline_agent(cfg, ckpt_file)
        eval_seed_ = eval_seed(int(cfg.seed))  # the runner's evaluation seeds for this training seed
        env = make_env(cfg.env, eval_seed_)
        bc = evaluate(env, TorchPolicyActor(agent.learner.bc.policy), args.episodes, seed=eval_seed_)
        row: dict[str, Any] = {"axis": axis, "shift": s, "seed": args.seed, "episodes": args.episodes,
                               "bc": bc["eval/success_rate"], "poir_online": None}
        if s == 0:
            row.update(poir_offline=offline_final["eval/success_rate"], poir_act_ms=offline_final.get("eval/act_ms"))
        elif axis in online_axes:
            run_dir = sdir / f"online_{axis}_s{s:g}"
            if redo and run_dir.exists():  # the earlier version's run is kept beside the new one
                kept = run_dir.with_name(f"{run_dir.name}_{redo}")
                if kept.exists():  # already kept: run_dir is a redo that was interrupted
                    shutil.rmtree(run_dir)
                else:
                    shutil.move(run_dir, kept)
            final = run(compose([*common, *shift, f"resume={ckpt_file}",
                                 f"agent.online_env_steps={args.online_steps}"]), run_dir)
            (run_dir / "final.json").write_text(json.dumps(final, indent=2))
            episodes = [m for m in read_metrics(run_dir) if "online/episode_success" in m]
            won = [m["online/episode_success"] for m in episodes]
            row.update(poir_offline=final["offline_eval/success_rate"], poir_online=final["eval/success_rate"],
                       poir_act_ms=final.get("offline_eval/act_ms"), poir_online_act_ms=final.get("eval/act_ms"),
                       online_episodes=len(won), online_episodes_won=int(sum(won)), **arm_summary(episodes))
        else:
            agent.policy.reset_latency()
            poir = evaluate(env, agent.policy, args.episodes, seed=eval_seed_)
            row.update(poir_offline=poir["eval/success_rate"], poir_act_ms=agent.policy.latency_ms()["act_ms"])
        row.update(carried)
        row["seconds"] = time.time() - t0
        rows.append(row)
        rows_file.write_text(json.dumps(rows, indent=2))
        print(f"[poir_lift] {json.dumps(row)}", flush=True)
    if not (sdir / "latency.json").exists():
        agent, replay = load_offline_agent(compose(common), ckpt_file)
        (sdir / "latency.json").write_text(json.dumps([measure_latency(agent, replay, t) for t in (1, 2)], indent=2))


def online_curve(args: argparse.Namespace, out: Path) -> None:
    """Success rate in the deployment env against online env steps: one longer fine-tuning run per cell,
    evaluated every --curve-every steps (at the first episode boundary past each multiple)."""
    from rlkit2.logging import read_metrics
    from rlkit2.train import run

    sdir = out / f"seed{args.seed}"
    ckpt_file = sdir / "poir_offline" / "checkpoints" / f"step_{args.offline_steps:09d}.pt"
    path = out / f"online_curve_seed{args.seed}.json"
    curves = _read_rows(path)
    for axis, s in parse_cells(args.cells):
        if any((c["axis"], c["shift"]) == (axis, s) for c in curves):
            continue
        run_dir = sdir / f"curve_{axis}_s{s:g}"
        cfg = compose(["experiment=poir_lift", f"env.dataset={out / 'demos.hdf5'}", f"seed={args.seed}",
                       "trainer.plot=false", f"trainer.eval_episodes={args.episodes}",
                       f"trainer.total_steps={args.offline_steps}", "trainer.progress=false",
                       "env.eval_nominal=false", f"resume={ckpt_file}", f"agent.online_env_steps={args.online_steps}",
                       f"trainer.eval_every={args.curve_every}", *shift_overrides(axis, s), *args.extra])
        final = run(cfg, run_dir)
        points = [{"online_steps": 0, "success": final["offline_eval/success_rate"]}]
        points += [{"online_steps": int(m["step"]) - args.offline_steps, "success": m["eval/success_rate"]}
                   for m in read_metrics(run_dir) if "eval/success_rate" in m and m["step"] > args.offline_steps]
        won = [m["online/episode_success"] for m in read_metrics(run_dir) if "online/episode_success" in m]
        curves.append({"axis": axis, "shift": s, "seed": args.seed, "episodes": args.episodes, "points": points,
                       "online_episodes": len(won), "online_episodes_won": int(sum(won))})
        path.write_text(json.dumps(curves, indent=2))
        print(f"[curve] {json.dumps(curves[-1])}", flush=True)


def collect_seeds(out: Path) -> dict[str, dict[str, Any]]:
    """Per-seed results, keyed by seed: the committed `seeds.json`, updated from the `seed<k>/` run dirs present.

    A run dir's top-level JSON files (`rows.json`: one row per cell; `latency.json`: the planner's cost; and any
    other, e.g. `rows_nosnap.json`) go in under their stem. Run dirs (checkpoints, `metrics.jsonl`,
    `final.json`) are not kept in the repository; `seeds.json` is what the report is regenerated from.
    """
    path = out / "seeds.json"
    seeds: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
    for sdir in out.glob("seed*"):
        m = re.fullmatch(r"seed(\d+)", sdir.name)
        if m and sdir.is_dir():
            entry = seeds.setdefault(m.group(1), {})
            entry.update({f.stem: json.loads(f.read_text()) for f in sorted(sdir.glob("*.json"))})
    return dict(sorted(seeds.items(), key=lambda kv: int(kv[0])))


def report(out: Path) -> dict[str, Any]:
    """Pool the seeds' cells: success rate over all their episodes, binomial standard error.

    Writes `seeds.json` (per-seed rows and latency, see `collect_seeds`), `results.json` and the plot.
    """
    seeds = collect_seeds(out)
    if seeds:
        (out / "seeds.json").write_text(json.dumps(seeds, indent=1))
    cells: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for entry in seeds.values():
        for r in entry.get("rows", []):
            cells.setdefault((r["axis"], r["shift"]), []).append(r)
    table = []
    for (axis, s), rs in sorted(cells.items(), key=lambda kv: (AXES.index(kv[0][0]), kv[0][1])):
        row: dict[str, Any] = {"axis": axis, "shift": s, "seeds": sorted(r["seed"] for r in rs)}
        versions = sorted({k for r in rs for k in r if re.fullmatch(r"poir_online_v\d+", k)})
        for key in ("bc", "poir_offline", "poir_online", *versions):
            have = [r for r in rs if r.get(key) is not None]
            n = sum(r["episodes"] for r in have)
            p = sum(r[key] * r["episodes"] for r in have) / n if n else None
            row.update({key: p, f"{key}_se": se(p, n) if n else None, f"{key}_episodes": n})
        row["online_episodes_won"] = f"{sum(r.get('online_episodes_won', 0) for r in rs)} / " \
                                     f"{sum(r.get('online_episodes', 0) for r in rs)}"
        ms = [r["poir_act_ms"] for r in rs if r.get("poir_act_ms")]
        row["poir_act_ms"] = float(np.mean(ms)) if ms else None
        table.append(row)
    latency = [entry["latency"] for entry in seeds.values() if "latency" in entry]
    demos = json.loads((out / "demos.json").read_text()) if (out / "demos.json").exists() else {}
    curves = [c for f in sorted(out.glob("online_curve_seed*.json")) for c in json.loads(f.read_text())]
    # curves of earlier fine-tuning versions (online_curve_v<k>_seed*.json), drawn dashed for comparison
    curves += [{**c, "version": f.name.split("_")[2]} for f in sorted(out.glob("online_curve_v*_seed*.json"))
               for c in json.loads(f.read_text())]
    results = {"task": "Lift", "demos": demos, "cells": table, "latency": latency, "online_curves": curves,
               "torch_threads": 1,
               "se": "binomial sqrt(p(1-p)/n) over all episodes of all seeds of the cell"}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "success_vs_shift.png")
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = (("bc", "BC (POIR's prior)", "o-"), ("poir_offline", "POIR offline", "s-"),
            ("poir_online", "POIR fine-tuned online", "^-"))
    curves = results.get("online_curves") or []
    ncol = 3 if curves else 2
    fig, axes = plt.subplots(1, ncol, figsize=(5 * ncol, 4), gridspec_kw={"width_ratios": [1, 1.4, 1][:ncol]})
    ax1, ax2 = axes[0], axes[1]
    rows = [r for r in results["cells"] if r["axis"] == "all"]
    for key, label, style in keys:
        have = [r for r in rows if r.get(key) is not None]
        ax1.errorbar([r["shift"] for r in have], [r[key] for r in have], yerr=[r[f"{key}_se"] for r in have],
                     fmt=style, capsize=3, label=label)
    ax1.set_xlabel("combined shift s (cube +-(3+100s) cm, joints +s rad, action noise s)", fontsize=8)
    ax1.set_ylabel("success rate (+- binomial s.e.)")
    ax1.set_ylim(-0.05, 1.05)
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    per_axis = [r for r in results["cells"] if r["axis"] != "all" and r["shift"] > 0]
    x = np.arange(len(per_axis))
    for i, (key, label, _) in enumerate(keys):
        ys = [r[key] if r.get(key) is not None else 0.0 for r in per_axis]
        err = [r[f"{key}_se"] or 0.0 for r in per_axis]
        ax2.bar(x + (i - 1) * 0.27, ys, 0.27, yerr=err, capsize=2, label=label)
    ax2.set_xticks(x, [f"{r['axis']}\ns={r['shift']:g}" for r in per_axis], fontsize=8)
    ax2.set_ylim(0, 1.05)
    ax2.set_title("one shift axis at a time", fontsize=9)
    ax2.grid(alpha=0.3, axis="y")
    if curves:
        ax3 = axes[2]
        for c in curves:
            xs = [p["online_steps"] for p in c["points"]]
            ys = np.array([p["success"] for p in c["points"]])
            old = c.get("version")
            label = f"{c['axis']} s={c['shift']:g}, seed {c['seed']}" + (f" ({old} fine-tuning)" if old else "")
            ax3.errorbar(xs, ys, yerr=np.sqrt(ys * (1 - ys) / c["episodes"]), fmt="v--" if old else "^-",
                         capsize=3, alpha=0.6 if old else 1.0, label=label)
        ax3.set_xlabel("online env steps in the shifted env", fontsize=8)
        ax3.set_ylim(-0.05, 1.05)
        ax3.set_title("POIR fine-tuning", fontsize=9)
        ax3.grid(alpha=0.3)
        ax3.legend(fontsize=7)
    lat = results.get("latency") or [[]]
    one = [x for seed in lat for x in seed if x["threads"] == 1]
    lat_txt = f"planner {np.mean([x['act_ms_mean'] for x in one]):.0f} ms/step (1 thread)" if one else ""
    fig.suptitle(f"robosuite Lift, {results['demos'].get('demos', '?')} nominal demos; {lat_txt}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


ABLATIONS = {
    "planner, prior-only proposals (the previous POIR)": ["agent.expert_proposals=0"],
    "planner, all proposals from the nearest demo action": ["agent.expert_proposals=1.0"],
    "planner, score over all 19 obs dims": ["agent.score_dims=[]"],
    "planner, no proposal noise": ["agent.noise_std=0.0"],
    "planner, horizon 3": ["agent.horizon=3"],
}


# online fine-tuning variants (the study's default: the model learns online and the planner's arm is chosen by
# Thompson sampling among agent.planner_arms)
ONLINE_ABLATIONS = {
    "fine-tuning: model only, configured planner (no arm selection)": ["agent.planner_arms=[{}]"],
    "fine-tuning: successful episodes' states join the score's reference": ["agent.score_add_successful=true"],
}


def ablate(args: argparse.Namespace, out: Path) -> None:
    """Planner / fine-tuning variants from one seed's offline checkpoint, on the study's evaluation seeds."""
    from rlkit2.core import evaluate
    from rlkit2.registry import make_env
    from rlkit2.run.common import eval_seed
    from rlkit2.train import run

    sdir = out / f"seed{args.seed}"
    ckpt_file = sdir / "poir_offline" / "checkpoints" / f"step_{args.offline_steps:09d}.pt"
    path = out / f"ablation{args.tag}.json"
    done = {(r["variant"], r["axis"], r["shift"], r["seed"]) for r in _read_rows(path)}
    variants = {"nearest demo action alone (no planner)": [], "BC on the score features only (no planner)": [],
                **ABLATIONS}
    for axis, s in parse_cells(args.ablate_cells) if args.ablate_cells else []:
        for name, overrides in variants.items():
            if (name, axis, s, args.seed) in done:
                continue
            cfg = compose(["experiment=poir_lift", f"env.dataset={out / 'demos.hdf5'}", f"seed={args.seed}",
                           *shift_overrides(axis, s), *overrides, *args.extra])
            eval_seed_ = eval_seed(int(cfg.seed))
            env = make_env(cfg.env, eval_seed_)
            agent, replay = load_offline_agent(cfg, ckpt_file)
            if name.startswith("BC on the score features"):
                actor = feature_bc_actor(agent.learner, replay, args.offline_steps, args.seed)
            else:
                actor = NearestDemoActor(agent.learner) if not overrides else agent.policy
            res = evaluate(env, actor, args.episodes, seed=eval_seed_)
            row = {"variant": name, "overrides": overrides, "axis": axis, "shift": s, "seed": args.seed,
                   "episodes": args.episodes, "success": res["eval/success_rate"],
                   "se": se(res["eval/success_rate"], args.episodes)}
            if overrides:
                row["act_ms"] = agent.policy.latency_ms()["act_ms"]
            _append_row(path, row)
            print(f"[ablate] {json.dumps(row)}", flush=True)
    common = ["experiment=poir_lift", f"env.dataset={out / 'demos.hdf5'}", f"seed={args.seed}", "trainer.plot=false",
              f"trainer.eval_episodes={args.episodes}", f"trainer.total_steps={args.offline_steps}",
              "trainer.progress=false", "env.eval_nominal=false", f"resume={ckpt_file}",
              f"agent.online_env_steps={args.online_steps}", *args.extra]
    for axis, s in parse_cells(args.ablate_online_cells) if args.ablate_online_cells else []:
        for i, (name, overrides) in enumerate(ONLINE_ABLATIONS.items()):
            if (name, axis, s, args.seed) in done:
                continue
            run_dir = sdir / f"ablation{args.tag}_online{i}_{axis}_s{s:g}"
            final = run(compose([*common, *shift_overrides(axis, s), *overrides]), run_dir)
            row = {"variant": name, "overrides": overrides, "axis": axis, "shift": s, "seed": args.seed,
                   "episodes": args.episodes, "success": final["eval/success_rate"],
                   "se": se(final["eval/success_rate"], args.episodes),
                   "offline_success": final["offline_eval/success_rate"]}
            _append_row(path, row)
            print(f"[ablate] {json.dumps(row)}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/imitation/results")
    p.add_argument("--cells", default=DEFAULT_CELLS, help="comma list of axis:strength (axes: all, object, "
                   "robot, noise)")
    p.add_argument("--online", default="all", help="axes whose cells also get online fine-tuning (comma list)")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--offline-steps", type=int, default=2000)
    p.add_argument("--online-steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny budget smoke run")
    p.add_argument("--report", action="store_true", help="only merge seeds.json and any seed*/ run dirs into "
                   "seeds.json, results.json + plot")
    p.add_argument("--ablate", action="store_true", help="only run the planner ablations (ablation<tag>.json)")
    p.add_argument("--ablate-cells", default="all:0.1,object:0.1")
    p.add_argument("--ablate-online-cells", default="all:0.1", help="cells of the online fine-tuning ablation "
                   "('' = none)")
    p.add_argument("--curve", action="store_true", help="only the online learning curves of --cells "
                   "(online_curve_seed<seed>.json)")
    p.add_argument("--curve-every", type=int, default=1000)
    p.add_argument("--tag", default="")
    p.add_argument("--redo-online", default="", metavar="TAG", help="redo the fine-tuned cells that have no "
                   "<key>_TAG yet, keeping their previous results as <key>_TAG (e.g. v2) and run dirs as *_TAG")
    p.add_argument("--latency", action="store_true", help="only each planner arm's per-step cost "
                   "(latency_arms.json, from --seed's offline checkpoint)")
    p.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    args = p.parse_args()
    if args.quick:
        args.cells, args.episodes, args.offline_steps, args.online_steps = "all:0,all:0.1,object:0.1", 3, 200, 100
    torch.set_num_threads(1)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.latency:
        sdir = out / f"seed{args.seed}"
        ckpt_file = sdir / "poir_offline" / "checkpoints" / f"step_{args.offline_steps:09d}.pt"
        agent, replay = load_offline_agent(compose(["experiment=poir_lift", f"env.dataset={out / 'demos.hdf5'}",
                                                    *args.extra]), ckpt_file)
        rows = arm_latency(agent, replay)
        (out / "latency_arms.json").write_text(json.dumps(rows, indent=2))
        print(json.dumps(rows, indent=2))
        return
    if args.ablate:
        ablate(args, out)
    elif args.curve:
        online_curve(args, out)
    elif not args.report:
        run_seed(args, out)
    print(json.dumps(report(out), indent=2))


if __name__ == "__main__":
    main()
