"""J-BOND against Best-of-N sampling on the embedded task: reward reached vs N, and inference cost.

    python -m experiments.bond.run            # about 6-8 min on one core

Policy: the tiny Gemma 2 SFT policy (experiments/warm/common.py); reward: the exact-checker score.
* Best-of-N of the SFT policy (`rlkit2.agents.bond.BestOfNActor`) for N in --ns on 256 held-out documents:
  mean checker score of the winner, and its cost per query (N generations + N reward calls, measured wall time);
  its KL to SFT is at most log N - (N - 1) / N (Beirami et al.), plotted as the BoN front.
* J-BOND (`rlkit2.agents.bond.JBondLearner`, paper defaults beta = 0.5, eta = 0.02, -log 16), trained for --steps
  steps; every --eval-every steps the policy's *single* sample is scored (cost: 1 generation, no reward call)
  and its KL(pi || pi_SFT) estimated from its samples.
Outputs: experiments/bond/results/{results.json, bond_vs_bon.png} and the tables printed here.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from experiments.warm.common import GEN, TEMPLATE, documents, log, sft_policy, true_scores
from experiments.warp.run import CheckerReward, evaluate_point

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--prompts-per-step", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--variants", nargs="+", default=["jbond"])
    ap.add_argument("--eval-docs", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse-bon", action="store_true", help="take the Best-of-N rows from results.json")
    ap.add_argument("--tag", default="", help="suffix of the results/plot file names (several settings side by side)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)

    from rlkit2.envs.text import TextEnvConfig, make_text_env

    from rlkit2.agents.bond import BestOfNActor, JBondConfig
    from rlkit2.agents.bond.builder import make_agent as make_jbond
    from rlkit2.lm.generation import LMActor

    sft, tok, sft_path = sft_policy()
    docs = documents(args.eval_docs, seed=5)
    prompts = [TEMPLATE.format(document=d) for d in docs]
    reward = CheckerReward()
    out: dict[str, Any] = {"args": vars(args), "bon": [], "jbond": []}

    # ---------------------------------------------------------------- Best-of-N of the SFT policy
    gen = LMActor(sft, tok, GEN)
    if args.reuse_bon:
        out["bon"] = json.loads((RESULTS / "results.json").read_text())["bon"]
    for n in [] if args.reuse_bon else args.ns:
        torch.manual_seed(77)
        actor = BestOfNActor(gen, reward, n)
        t0 = time.perf_counter()
        res = actor.select(prompts, documents=docs)
        secs = time.perf_counter() - t0
        row = {"n": n, "reward": float(res.rewards.mean()), "kl_bound": math.log(n) - (n - 1) / n,
               "samples_per_query": actor.samples_generated / len(docs),
               "reward_calls_per_query": actor.reward_calls / len(docs), "ms_per_query": 1000 * secs / len(docs)}
        out["bon"].append(row)
        log(f"BoN N={n}: {row}")

    # ---------------------------------------------------------------- J-BOND
    for variant in args.variants:
        t0 = time.time()
        torch.manual_seed(0)
        env = make_text_env(TextEnvConfig(), seed=200, reward_fn=reward)
        cfg = JBondConfig(init_checkpoint=str(sft_path), generation=copy.deepcopy(GEN),
                          prompts_per_step=args.prompts_per_step, lr=args.lr, variant=variant,
                          n=2 if variant == "jbond" else 4)
        learner = make_jbond(cfg, env, tokenizer=tok, seed=0).learner
        curve = [{"step": 0, **evaluate_point(learner.lm, sft, tok, docs)}]
        for step in range(1, args.steps + 1):
            m = learner.step()
            if step % args.eval_every == 0:
                t1 = time.perf_counter()
                p = evaluate_point(learner.lm, sft, tok, docs)
                p["ms_per_query"] = 1000 * (time.perf_counter() - t1) / len(docs)  # 1 sample + KL forwards
                curve.append({"step": step, **p, "train_score": float(m["train/score"]),
                              "anchor_score": float(m["train/anchor_score"])})
                log(f"{variant} step {step} ({time.time() - t0:.0f}s): {curve[-1]}")
        torch.manual_seed(77)
        t1 = time.perf_counter()
        one = LMActor(learner.lm, tok, GEN).rollout(prompts)
        ms = 1000 * (time.perf_counter() - t1) / len(docs)
        out["jbond"].append({"variant": variant, "curve": curve, "seconds": time.time() - t0,
                             "final_reward": float(true_scores(docs, one.texts).mean()), "ms_per_query": ms})
        (RESULTS / f"results{args.tag}.json").write_text(json.dumps(out, indent=1))
    (RESULTS / f"results{args.tag}.json").write_text(json.dumps(out, indent=1))
    plot(out, RESULTS / f"bond_vs_bon{args.tag}.png")
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
