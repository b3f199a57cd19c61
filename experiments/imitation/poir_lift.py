"""BC vs POIR (offline) vs POIR (online fine-tuned) on robosuite Lift across deployment-shift strengths.

    python experiments/imitation/poir_lift.py --out experiments/imitation/results
    python experiments/imitation/poir_lift.py --quick          # a smoke run (minutes)

Scaled down for a shared 2-core CPU (torch.set_num_threads(1)): 30 scripted demos from the nominal env,
2000 offline updates, 1000 online env steps per shift, 16 evaluation episodes (horizon 80) per cell, one
seed. Everything runs through the `rlkit2-train` machinery (`rlkit2.train.run` with the `poir_lift`
preset): one offline POIR run, then for each shift strength s an online fine-tuning run resumed from the
offline checkpoint in the env shifted by init=s, action_noise=s. "BC" is POIR's own prior (the BC policy
inside the offline checkpoint), evaluated on the same episode seeds, so BC vs POIR differ only by the
planner. Writes results.json, success_vs_shift.png and the run dirs under --out.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


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
    from rlkit2.data.robomimic import read_robomimic, to_transitions
    from rlkit2.registry import EnvSpec, get_agent
    from rlkit2.replay import TransitionReplay
    from rlkit2.trainer import to_dataclass

    entry = get_agent("poir")
    ds = read_robomimic(cfg.env.dataset, obs_keys=list(cfg.env.obs_keys), max_demos=int(cfg.env.num_demos))
    replay = TransitionReplay.from_arrays(to_transitions(ds, list(cfg.env.obs_keys)))
    agent = entry.builder(to_dataclass(cfg.agent, entry.config_cls), EnvSpec(replay.obs_dim, replay.act_dim),
                          replay, int(cfg.seed))
    agent.learner.load_state_dict(ckpt.load(checkpoint)["learner"])
    return agent, replay


def measure_latency(agent, replay, threads: int, n: int = 200) -> dict[str, float]:
    torch.set_num_threads(threads)
    obs = replay.arrays()["observations"]
    idx = np.random.default_rng(0).integers(0, len(obs), n)
    perturbed = obs[idx] + np.random.default_rng(1).normal(0, 0.02, obs[idx].shape).astype(np.float32)
    agent.policy.reset_latency()
    for o in perturbed[:10]:
        agent.policy.act(o)  # warm-up
    agent.policy.reset_latency()
    for o in perturbed:
        agent.policy.act(o)
    out = agent.policy.latency_ms()
    torch.set_num_threads(1)
    return {"threads": threads, "act_ms_mean": out["act_ms"], "act_ms_p95": out["act_ms_p95"]}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results["rows"], key=lambda r: r["shift"])
    s = [r["shift"] for r in rows]
    n = results["eval_episodes"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label, style in (("bc", "BC (POIR's prior)", "o-"), ("poir_offline", "POIR (offline)", "s-"),
                              ("poir_online", "POIR (online fine-tuned)", "^-")):
        xs = [x for x, r in zip(s, rows, strict=True) if r.get(key) is not None]
        ys = np.array([r[key] for r in rows if r.get(key) is not None])
        err = np.sqrt(ys * (1 - ys) / n)
        ax.errorbar(xs, ys, yerr=err, fmt=style, capsize=3, label=label)
    ax.set_xlabel("shift strength s: cube range +-(0.03+s) m, start-joint noise +s rad, action noise std s",
                  fontsize=8)
    ax.set_ylabel(f"success rate ({n} episodes)")
    ax.set_ylim(-0.05, 1.05)
    lat = results.get("latency", [])
    lat_txt = ", ".join(f"{x['act_ms_mean']:.0f} ms ({x['threads']} thr)" for x in lat)
    ax.set_title(f"robosuite Lift, {results['num_demos']} nominal demos; planner {lat_txt}", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confirm(args: argparse.Namespace, out: Path) -> None:
    """BC vs offline POIR from the study's offline checkpoint, more episodes, seeds disjoint from the study's."""
    from rlkit2.actors import TorchPolicyActor
    from rlkit2.core import evaluate
    from rlkit2.registry import make_env

    ckpt_file = out / "poir_offline" / "checkpoints" / f"step_{args.offline_steps:09d}.pt"
    rows, t0 = [], time.time()
    for s in [float(x) for x in args.confirm.split(",")]:
        cfg = compose(["experiment=poir_lift", f"env.dataset={out / 'demos.hdf5'}", f"seed={args.seed}",
                       f"env.shift.init={s}", f"env.shift.action_noise={s}", *args.extra])
        agent, _ = load_offline_agent(cfg, ckpt_file)
        env = make_env(cfg.env, 77_777)
        seed = 50_000 + args.seed  # not the study's evaluation seeds
        bc = evaluate(env, TorchPolicyActor(agent.learner.bc.policy), args.episodes, seed=seed)
        poir = evaluate(env, agent.policy, args.episodes, seed=seed)
        rows.append({"shift": s, "episodes": args.episodes, "bc": bc["eval/success_rate"],
                     "poir_offline": poir["eval/success_rate"], "poir_act_ms": agent.policy.latency_ms()["act_ms"]})
        print(f"[confirm] {json.dumps(rows[-1])} ({time.time() - t0:.0f}s)", flush=True)
        (out / f"confirm{args.tag}.json").write_text(json.dumps({"rows": rows, "seed_base": seed,
                                                                "extra": args.extra}, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="experiments/imitation/results")
    p.add_argument("--shifts", default="0,0.1,0.2,0.05,0.15")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--offline-steps", type=int, default=2000)
    p.add_argument("--online-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny budget smoke run")
    p.add_argument("--confirm", default="", help="only re-evaluate BC vs offline POIR of an existing run at these "
                   "shifts (comma list) with --episodes episodes on fresh seeds; writes confirm.json")
    p.add_argument("--tag", default="", help="suffix of confirm<tag>.json")
    p.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    args = p.parse_args()
    if args.quick:
        args.shifts, args.episodes, args.offline_steps, args.online_steps = "0,0.1", 3, 200, 200
    torch.set_num_threads(1)
    from rlkit2.envs.robosuite import RobosuiteEnvConfig

    from rlkit2.actors import TorchPolicyActor
    from rlkit2.core import evaluate
    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.imitation_trainer import EVAL_SEED_OFFSET
    from rlkit2.registry import make_env
    from rlkit2.train import run

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.confirm:
        confirm(args, out)
        return
    base = compose(["experiment=poir_lift"])
    demos = out / "demos.hdf5"
    if not demos.exists():
        stats = collect_demos(RobosuiteEnvConfig(horizon=int(base.env.horizon)), demos, int(base.env.num_demos),
                              seed=args.seed)
        (out / "demos.json").write_text(json.dumps(stats.as_dict(), indent=2))
    common = ["experiment=poir_lift", f"env.dataset={demos}", f"seed={args.seed}", "trainer.plot=false",
              f"trainer.eval_episodes={args.episodes}", f"trainer.total_steps={args.offline_steps}",
              "trainer.progress=false", *args.extra]
    t0 = time.time()
    offline_dir = out / "poir_offline"
    ckpt_file = offline_dir / "checkpoints" / f"step_{args.offline_steps:09d}.pt"
    if not ckpt_file.exists():
        cfg = compose([*common, "env.shift.init=0", "env.shift.action_noise=0", "agent.online_env_steps=0"])
        offline_final = run(cfg, offline_dir)
        (offline_dir / "final.json").write_text(json.dumps(offline_final, indent=2))
    offline_final = json.loads((offline_dir / "final.json").read_text())
    rows = []
    for s in [float(x) for x in args.shifts.split(",")]:
        shift = [f"env.shift.init={s}", f"env.shift.action_noise={s}"]
        cfg = compose([*common, *shift])
        agent, replay = load_offline_agent(cfg, ckpt_file)
        env = make_env(cfg.env, int(cfg.seed) + EVAL_SEED_OFFSET)
        bc = evaluate(env, TorchPolicyActor(agent.learner.bc.policy), args.episodes,
                      seed=int(cfg.seed) + EVAL_SEED_OFFSET)
        row = {"shift": s, "bc": bc["eval/success_rate"], "bc_length": bc["eval/length"]}
        if s == 0:
            row.update(poir_offline=offline_final["eval/success_rate"], poir_online=None,
                       poir_offline_act_ms=offline_final.get("eval/act_ms"))
        else:
            run_dir = out / f"poir_online_s{s:g}"
            final = run(compose([*common, *shift, f"resume={ckpt_file}",
                                 f"agent.online_env_steps={args.online_steps}"]), run_dir)
            (run_dir / "final.json").write_text(json.dumps(final, indent=2))
            row.update(poir_offline=final["offline_eval/success_rate"], poir_online=final["eval/success_rate"],
                       poir_online_nominal=final.get("eval_nominal/success_rate"),
                       poir_offline_nominal=final.get("offline_eval_nominal/success_rate"),
                       poir_offline_act_ms=final.get("offline_eval/act_ms"),
                       poir_online_act_ms=final.get("eval/act_ms"))
        rows.append(row)
        print(f"[poir_lift] {json.dumps(row)}  ({time.time() - t0:.0f}s)", flush=True)
        results = {"task": "Lift", "num_demos": int(base.env.num_demos), "eval_episodes": args.episodes,
                   "offline_steps": args.offline_steps, "online_env_steps": args.online_steps, "seed": args.seed,
                   "shift_definition": "env.shift.init=s, env.shift.action_noise=s", "rows": rows,
                   "seconds": time.time() - t0, "torch_threads": 1}
        (out / "results.json").write_text(json.dumps(results, indent=2))
    agent, replay = load_offline_agent(compose(common), ckpt_file)
    results["latency"] = [measure_latency(agent, replay, t) for t in (1, 2)]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, out / "success_vs_shift.png")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
