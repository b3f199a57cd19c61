"""WARP's KL-reward front against plain RL at several KL coefficients, on the embedded task.

    python -m experiments.warp.run            # about 8-10 min on one idle core

Every training is a runner run (`rlkit2.train.run` on the composed config, i.e. `rlkit2-train <overrides>`):
* WARP: `rlkit2-train experiment=warp_synthetic` (`rlkit2.agents.warp`: beta = 0.1 to the EMA anchor, mu = 0.01,
  M runs of T steps, SLERP, LITI eta = 0.3, I iterations; `agent.record_merges=true`, so each iteration's
  checkpoint holds that merge's init, runs and SLERP result);
* plain RL: `rlkit2-train experiment=warp_synthetic_rl agent.kl_coef=<beta>` for beta in --betas (RLOO, k = 2,
  beta * KL to the *fixed* SFT reference), a checkpoint every --eval-every steps (each beta's trajectory is a set
  of front points).
Policy: the tiny Gemma 2 SFT policy of experiments/warm/common.py (`agent.init_checkpoint`). Reward: the exact
checker score (`reward=callable reward.target=experiments.warm.common:true_scores`), so the front measures the
real objective. This script keeps what is the study's own: the SFT checkpoint, launching the runs, and the front:
every point is evaluated from the runs' checkpoints on the same 256 held-out documents, one sample each at
temperature 1 with one sampling seed: reward = mean checker score, KL = mean over samples of
sum_t log pi(y_t) - log pi_sft(y_t) (the k1 estimate of KL(pi || pi_sft)). Per WARP iteration: the M runs, the
SLERP merge, and the LITI path (1 - eta) init + eta * slerp for eta in --etas (WARP's front), against the same
path towards each single run (1 - eta) init + eta * run_m (what merging adds).
Outputs: <out>/{results.json, warp_front.png} and the tables printed here; run dirs under --runs-dir.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from experiments.warm.common import documents, evaluate_point, launch, log, policy_lm, run_checkpoints, sft_policy
from rlkit2.merging import cosine_similarity, lerp_state_dicts, liti, state_dict_norm, task_vector

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--betas", type=float, nargs="*", default=[0.01, 0.1, 0.3])
    ap.add_argument("--reuse", action="store_true",
                    help="do not retrain runs already finished in --runs-dir with the same overrides")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot and tables from results{tag}.json")
    ap.add_argument("--rl-steps", type=int, default=120)
    ap.add_argument("--eval-every", type=int, default=40)
    ap.add_argument("--num-policies", type=int, default=2)
    ap.add_argument("--steps-per-run", type=int, default=60)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--etas", type=float, nargs="+", default=[0.1, 0.3, 0.5, 0.7, 1.0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-docs", type=int, default=256)
    ap.add_argument("--prompts-per-step", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft", default="", help="SFT checkpoint {'lm': state_dict} (default: train/cache the study's)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides for every run")
    ap.add_argument("--runs-dir", type=Path, default=Path("outputs/warp"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="", help="suffix of the results/plot file names (several settings side by side)")
    return ap.parse_args(argv)


def common_overrides(args: argparse.Namespace, sft: str) -> list[str]:
    return [f"agent.init_checkpoint={sft}", f"agent.prompts_per_step={args.prompts_per_step}", f"agent.lr={args.lr}",
            f"seed={args.seed}", f"trainer.threads={args.threads}",
            # the study evaluates every front point itself, from the checkpoints, with one sampling seed
            "trainer.eval_every=0", *args.set]


def warp_rows(args: argparse.Namespace, run_dir: Path, docs: list[str]) -> list[dict[str, Any]]:
    """One row per WARP iteration, from the checkpoint at its end (`agent.record_merges`: init, runs, SLERP)."""
    from rlkit2.run.lm import load_phase

    ckpts = run_checkpoints(run_dir)
    phase = load_phase(ckpts[0][1], trust_config=True)
    lm, ref, tok = policy_lm(phase.learner), phase.learner.reference, phase.learner.tokenizer

    def at(sd: dict[str, torch.Tensor]) -> dict[str, float]:
        lm.load_state_dict(sd)
        return evaluate_point(lm, ref, tok, docs)

    rows = []
    for _, path in ckpts:
        phase.load_checkpoint(path)
        last = phase.learner.last_iteration
        init, runs, slerp = last["init"], last["runs"], last["slerp"]
        deltas = [task_vector(r, init) for r in runs]
        row: dict[str, Any] = {"iteration": phase.learner.iteration - 1, "checkpoint_step": phase.step,
                               "init": at(init),
                               "runs": [at(r) for r in runs], "slerp": at(slerp),
                               "liti": [{"eta": e, **at(liti(init, slerp, e))} for e in args.etas],
                               "run_paths": [[{"eta": e, **at(lerp_state_dicts(init, r, e))} for e in args.etas]
                                             for r in runs],
                               "task_vector_cosine": cosine_similarity(deltas[0], deltas[-1]),
                               "task_vector_norms": [state_dict_norm(d) for d in deltas],
                               "slerp_norm": state_dict_norm(task_vector(slerp, init))}
        log(f"WARP iteration {row['iteration']}: runs {row['runs']} slerp {row['slerp']} "
            f"cos {row['task_vector_cosine']:.3f}")
        rows.append(row)
    return rows


def rl_curve(run_dir: Path, docs: list[str]) -> list[dict[str, Any]]:
    """The front points of one plain-RL run: each checkpoint's policy."""
    from rlkit2.run.lm import load_phase

    ckpts = run_checkpoints(run_dir)
    phase = load_phase(ckpts[0][1], trust_config=True)
    curve = []
    for step, path in ckpts:
        phase.load_checkpoint(path)
        curve.append({"step": step, **evaluate_point(policy_lm(phase.learner), phase.learner.reference,
                                                     phase.learner.tokenizer, docs)})
    return curve


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"results{args.tag}.json"
    if args.plot_only:
        saved = json.loads(path.read_text())
        plot(saved, args.out / f"warp_front{args.tag}.png")
        print_tables(saved)
        return
    from rlkit2.run.lm import load_phase
    from rlkit2.train import compose

    sft = args.sft or str(sft_policy()[2])
    common = common_overrides(args, sft)
    docs = documents(args.eval_docs, seed=5)
    out: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                           "runs": {}, "rl": [], "warp": []}
    sft_phase = load_phase(compose(["experiment=warp_synthetic_rl", *common]))  # step 0: the SFT policy itself
    out["sft"] = evaluate_point(policy_lm(sft_phase.learner), sft_phase.learner.reference,
                                sft_phase.learner.tokenizer, docs)
    log(f"SFT: {out['sft']}")

    # ---------------------------------------------------------------- WARP
    M, T, iters = args.num_policies, args.steps_per_run, args.iterations
    overrides = ["experiment=warp_synthetic", *common, f"agent.num_policies={M}", f"agent.steps_per_run={T}",
                 f"agent.iterations={iters}", f"trainer.total_steps={iters * M * T}",
                 f"trainer.checkpoint_every={M * T}", f"trainer.keep_checkpoints={iters}"]
    run_dir = args.runs_dir / f"warp{args.tag}"
    t0 = time.time()
    launch(overrides, run_dir, reuse=args.reuse)
    out["warp_seconds"] = time.time() - t0
    out["runs"]["warp"] = {"overrides": overrides, "run_dir": str(run_dir)}
    out["warp"] = warp_rows(args, run_dir, docs)
    path.write_text(json.dumps(out, indent=1))

    # ---------------------------------------------------------------- plain RL at several betas
    for beta in args.betas:
        overrides = ["experiment=warp_synthetic_rl", *common, f"agent.kl_coef={beta}",
                     f"trainer.total_steps={args.rl_steps}", f"trainer.checkpoint_every={args.eval_every}",
                     f"trainer.keep_checkpoints={max(1, args.rl_steps // args.eval_every)}"]
        run_dir = args.runs_dir / f"rl_beta{beta:g}"
        t0 = time.time()
        launch(overrides, run_dir, reuse=args.reuse)
        seconds = time.time() - t0
        out["runs"][f"rl_beta{beta:g}"] = {"overrides": overrides, "run_dir": str(run_dir)}
        out["rl"].append({"beta": beta, "curve": rl_curve(run_dir, docs), "seconds": seconds})
        log(f"RL beta={beta} ({seconds:.0f}s): {out['rl'][-1]['curve'][-1]}")
        path.write_text(json.dumps(out, indent=1))
    plot(out, args.out / f"warp_front{args.tag}.png")
    print_tables(out)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    s = out["sft"]
    ax.scatter([s["kl"]], [s["reward"]], c="k", marker="*", s=120, label="SFT", zorder=5)
    for r in out["rl"]:
        ax.plot([s["kl"]] + [c["kl"] for c in r["curve"]], [s["reward"]] + [c["reward"] for c in r["curve"]],
                ls="--", marker="x", alpha=0.7, label=f"RL, KL to SFT, beta={r['beta']:g}")
    colors = ["tab:red", "tab:purple", "tab:brown"]
    for row in out["warp"]:
        c = colors[row["iteration"] % len(colors)]
        init = row["init"]
        front = [init] + row["liti"]
        ax.plot([p["kl"] for p in front], [p["reward"] for p in front], c=c, marker="o",
                label=f"WARP it.{row['iteration'] + 1}: LITI init->SLERP")
        for j, rp in enumerate(row["run_paths"]):
            pts = [init] + rp
            ax.plot([p["kl"] for p in pts], [p["reward"] for p in pts], c=c, ls=":", marker=".", alpha=0.6,
                    label=f"it.{row['iteration'] + 1}: init->single run" if j == 0 else None)
    ax.set_xlabel("KL(pi || pi_SFT)  (nats / sequence)")
    ax.set_ylabel("exact-checker score")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_tables(out: dict[str, Any]) -> None:
    print(f"\nSFT: reward {out['sft']['reward']:.3f}, KL 0")
    print("\n| policy | KL to SFT | checker score |")
    print("|---|---|---|")
    for r in out["rl"]:
        for c in r["curve"]:
            print(f"| RL beta={r['beta']:g} step {c['step']} | {c['kl']:.2f} | {c['reward']:.3f} |")
    for row in out["warp"]:
        it = row["iteration"] + 1
        for j, p in enumerate(row["runs"]):
            print(f"| WARP it.{it} run {j} | {p['kl']:.2f} | {p['reward']:.3f} |")
        print(f"| WARP it.{it} SLERP | {row['slerp']['kl']:.2f} | {row['slerp']['reward']:.3f} |")
        for p in row["liti"]:
            print(f"| WARP it.{it} LITI eta={p['eta']:g} | {p['kl']:.2f} | {p['reward']:.3f} |")
        for j, rp in enumerate(row["run_paths"]):
            for p in rp:
                print(f"| it.{it} init->run {j} eta={p['eta']:g} | {p['kl']:.2f} | {p['reward']:.3f} |")
        print(f"| (it.{it} task-vector cosine {row['task_vector_cosine']:.3f}, norms "
              f"{', '.join(f'{x:.3f}' for x in row['task_vector_norms'])}, SLERP norm {row['slerp_norm']:.3f}) | | |")


if __name__ == "__main__":
    main()
