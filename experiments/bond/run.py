"""J-BOND against Best-of-N sampling on the embedded task: reward reached vs N, and inference cost.

    python -m experiments.bond.run            # about 6-8 min on one idle core

Policy: the tiny Gemma 2 SFT policy (experiments/warm/common.py); reward: the exact-checker score.
* Best-of-N of the SFT policy (`rlkit2.agents.bond.BestOfNActor`, inference only) for N in --ns on 256 held-out
  documents: mean checker score of the winner, and its cost per query (N generations + N reward calls, measured
  wall time); its KL to SFT is at most log N - (N - 1) / N (Beirami et al.), plotted as the BoN front.
* J-BOND trained by the runner: `rlkit2-train experiment=bond_synthetic` (`rlkit2.agents.bond`, paper defaults
  beta = 0.5, eta = 0.02, -log 16; SFT policy through `agent.init_checkpoint`, the checker through
  `reward=callable`) for --steps steps, a checkpoint every --eval-every steps. Each checkpoint's policy is scored
  here on its *single* sample (cost: 1 generation, no reward call) and its KL(pi || pi_SFT) estimated from its
  samples; the training score beside it is the run's logged `train/score` at that step.
Outputs: <out>/{results.json, bond_vs_bon.png} and the tables printed here; run dirs under --runs-dir.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from experiments.warm.common import (
    GEN,
    TEMPLATE,
    documents,
    evaluate_point,
    launch,
    log,
    policy_lm,
    run_checkpoints,
    sft_policy,
    true_scores,
)

RESULTS = Path(__file__).resolve().parent / "results"


class CheckerReward:
    """The exact-checker score as the reward Best-of-N selects with (the J-BOND run gets it by reward=callable)."""

    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        return true_scores(list(documents), list(responses))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--prompts-per-step", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--variants", nargs="+", default=["jbond"], choices=["jbond", "bond"])
    ap.add_argument("--eval-docs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-bon", action="store_true", help="take the Best-of-N rows from <out>/results.json")
    ap.add_argument("--reuse", action="store_true",
                    help="do not retrain runs already finished in --runs-dir with the same overrides")
    ap.add_argument("--sft", default="", help="SFT checkpoint {'lm': state_dict} (default: train/cache the study's)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides for every run")
    ap.add_argument("--runs-dir", type=Path, default=Path("outputs/bond"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="", help="suffix of the results/plot file names (several settings side by side)")
    return ap.parse_args(argv)


def train_scores(run_dir: Path) -> dict[int, dict[str, float]]:
    """The run's logged training rows by step (metrics.jsonl)."""
    from rlkit2.logging import read_metrics

    return {int(r["step"]): r for r in read_metrics(run_dir) if "train/score" in r}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    from rlkit2.agents.bond import BestOfNActor
    from rlkit2.lm.generation import LMActor
    from rlkit2.run.lm import load_phase
    from rlkit2.train import compose

    sft_path = args.sft or str(sft_policy()[2])
    docs = documents(args.eval_docs, seed=5)
    prompts = [TEMPLATE.format(document=d) for d in docs]
    out: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                           "runs": {}, "bon": [], "jbond": []}
    common = [f"agent.init_checkpoint={sft_path}", f"agent.prompts_per_step={args.prompts_per_step}",
              f"agent.lr={args.lr}", f"seed={args.seed}", f"trainer.threads={args.threads}",
              f"trainer.total_steps={args.steps}", f"trainer.checkpoint_every={args.eval_every}",
              f"trainer.keep_checkpoints={max(1, args.steps // args.eval_every)}",
              # every step's training row (train/score at a checkpoint's step); the study evaluates the
              # checkpoints itself, on the Best-of-N documents with one sampling seed
              "trainer.log_every=1", "trainer.eval_every=0", *args.set]

    # ---------------------------------------------------------------- Best-of-N of the SFT policy
    sft_phase = load_phase(compose(["experiment=bond_synthetic", *common]))  # the SFT policy, as the runs start
    sft, tok = policy_lm(sft_phase.learner), sft_phase.learner.tokenizer
    gen = LMActor(sft, tok, GEN)
    if args.reuse_bon:
        out["bon"] = json.loads((args.out / "results.json").read_text())["bon"]
    for n in [] if args.reuse_bon else args.ns:
        torch.manual_seed(77)
        actor = BestOfNActor(gen, CheckerReward(), n)
        t0 = time.perf_counter()
        res = actor.select(prompts, documents=docs)
        secs = time.perf_counter() - t0
        row = {"n": n, "reward": float(res.rewards.mean()), "kl_bound": math.log(n) - (n - 1) / n,
               "samples_per_query": actor.samples_generated / len(docs),
               "reward_calls_per_query": actor.reward_calls / len(docs), "ms_per_query": 1000 * secs / len(docs)}
        out["bon"].append(row)
        log(f"BoN N={n}: {row}")

    # ---------------------------------------------------------------- J-BOND, trained by the runner
    for variant in args.variants:
        overrides = ["experiment=bond_synthetic", *common, f"agent.variant={variant}",
                     f"agent.n={2 if variant == 'jbond' else 4}"]
        run_dir = args.runs_dir / f"{variant}{args.tag}"
        t0 = time.time()
        launch(overrides, run_dir, reuse=args.reuse)
        seconds = time.time() - t0
        out["runs"][variant] = {"overrides": overrides, "run_dir": str(run_dir)}
        logged = train_scores(run_dir)
        curve: list[dict[str, Any]] = [{"step": 0, **evaluate_point(sft, sft_phase.learner.reference, tok, docs)}]
        ckpts = run_checkpoints(run_dir)
        phase = load_phase(ckpts[0][1], trust_config=True)
        lm = policy_lm(phase.learner)
        for step, path in ckpts:
            phase.load_checkpoint(path)
            t1 = time.perf_counter()
            p = evaluate_point(lm, phase.learner.reference, tok, docs)
            p["ms_per_query"] = 1000 * (time.perf_counter() - t1) / len(docs)  # 1 sample + KL forwards
            curve.append({"step": step, **p, "train_score": logged.get(step, {}).get("train/score"),
                          "anchor_score": logged.get(step, {}).get("train/anchor_score")})
            log(f"{variant} step {step}: {curve[-1]}")
        torch.manual_seed(77)
        t1 = time.perf_counter()
        one = LMActor(lm, tok, GEN).rollout(prompts)  # the last checkpoint's policy, one sample a query
        ms = 1000 * (time.perf_counter() - t1) / len(docs)
        out["jbond"].append({"variant": variant, "curve": curve, "seconds": seconds,
                             "final_reward": float(true_scores(docs, one.texts).mean()), "ms_per_query": ms})
        (args.out / f"results{args.tag}.json").write_text(json.dumps(out, indent=1))
    (args.out / f"results{args.tag}.json").write_text(json.dumps(out, indent=1))
    plot(out, args.out / f"bond_vs_bon{args.tag}.png")
    print_tables(out)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ns = [r["n"] for r in out["bon"]]
    axes[0].plot(ns, [r["reward"] for r in out["bon"]], marker="o", label="Best-of-N of SFT (N samples/query)")
    for run in out["jbond"]:
        final = run["curve"][-1]["reward"]
        axes[0].axhline(final, ls="--", c="tab:red" if run["variant"] == "jbond" else "tab:green",
                        label=f"{run['variant']} after {run['curve'][-1]['step']} steps (1 sample/query)")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("N (samples and reward calls per query at inference)")
    axes[0].set_ylabel("exact-checker score")
    axes[0].legend(fontsize=7)
    axes[1].plot([r["kl_bound"] for r in out["bon"]], [r["reward"] for r in out["bon"]], marker="o",
                 label="Best-of-N (KL bound log N - (N-1)/N)")
    for n_, r in zip(ns, out["bon"], strict=True):
        axes[1].annotate(f"N={n_}", (r["kl_bound"], r["reward"]), fontsize=7)
    for run in out["jbond"]:
        axes[1].plot([c["kl"] for c in run["curve"]], [c["reward"] for c in run["curve"]], marker="x",
                     label=f"{run['variant']} during training")
    axes[1].set_xlabel("KL(pi || pi_SFT)")
    axes[1].set_ylabel("exact-checker score")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_tables(out: dict[str, Any]) -> None:
    print("\n| method | samples / query | reward calls / query | ms / query | KL to SFT | checker score |")
    print("|---|---|---|---|---|---|")
    for r in out["bon"]:
        print(f"| Best-of-{r['n']} (SFT) | {r['samples_per_query']:.0f} | {r['reward_calls_per_query']:.0f} | "
              f"{r['ms_per_query']:.1f} | <= {r['kl_bound']:.2f} | {r['reward']:.3f} |")
    for run in out["jbond"]:
        for c in run["curve"]:
            print(f"| {run['variant']} step {c['step']} | 1 | 0 | {run['ms_per_query']:.1f} | {c['kl']:.2f} | "
                  f"{c['reward']:.3f} |")


if __name__ == "__main__":
    main()
