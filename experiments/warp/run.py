"""WARP's KL-reward front against plain RL at several KL coefficients, on the embedded task.

    python -m experiments.warp.run            # about 8-10 min on one core

Policy: the tiny Gemma 2 SFT policy of experiments/warm/common.py. Reward: the exact-checker score (statement
precision), so the front measures the real objective. Every point is evaluated on the same 256 held-out
documents, one sample each at temperature 1: reward = mean checker score, KL = mean over samples of
sum_t log pi(y_t) - log pi_sft(y_t) (the k1 estimate of KL(pi || pi_sft)).

* plain RL: RLOO (k = 2) with beta * KL to the *fixed* SFT reference, beta in --betas, checkpoints every
  --eval-every steps (each beta's trajectory is a set of front points);
* WARP: `rlkit2.agents.warp.WarpLearner`, beta = 0.1 to the EMA anchor (mu = 0.01), M runs of T steps, SLERP,
  LITI eta = 0.3, --iterations iterations. Per iteration: the M runs, the SLERP merge, and the LITI path
  (1 - eta) init + eta * slerp for eta in --etas (WARP's front), against the same path towards each single
  run (1 - eta) init + eta * run_m (what merging adds).
Outputs: experiments/warp/results/{results.json, warp_front.png} and the tables printed here.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch

from experiments.warm.common import GEN, TEMPLATE, documents, log, sft_policy, true_scores
from rlkit2.merging import cosine_similarity, lerp_state_dicts, liti, state_dict_norm, task_vector

RESULTS = Path(__file__).resolve().parent / "results"


class CheckerReward:
    def __call__(self, documents: list[str], responses: list[str]) -> torch.Tensor:
        return true_scores(list(documents), list(responses))


@torch.no_grad()
def evaluate_point(lm: Any, sft: Any, tok: Any, docs: list[str]) -> dict[str, float]:
    from rlkit2.lm.generation import LMActor, response_logprobs

    torch.manual_seed(1234)
    actor = LMActor(lm, tok, GEN)
    ro = actor.rollout([TEMPLATE.format(document=d) for d in docs])
    lp = response_logprobs(lm, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask)["logprobs"]
    rp = response_logprobs(sft, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask)["logprobs"]
    kl = ((lp - rp) * ro.response_mask).sum(1)
    return {"reward": float(true_scores(docs, ro.texts).mean()), "kl": float(kl.mean()),
            "words": sum(len(t.split()) for t in ro.texts) / len(docs)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--betas", type=float, nargs="*", default=[0.01, 0.1, 0.3])
    ap.add_argument("--reuse-rl", action="store_true", help="take the plain-RL rows from results.json")
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
    ap.add_argument("--tag", default="", help="suffix of the results/plot file names (several settings side by side)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        out = json.loads((RESULTS / f"results{args.tag}.json").read_text())
        plot(out, RESULTS / f"warp_front{args.tag}.png")
        print_tables(out)
        return

    from rlkit2.envs.text import TextEnvConfig, make_text_env

    from rlkit2.agents.ppo_lm.builder import make_agent as make_ppo_lm
    from rlkit2.agents.ppo_lm.config import PpoLmConfig
    from rlkit2.agents.warp import WarpConfig
    from rlkit2.agents.warp.builder import make_agent as make_warp

    sft, tok, sft_path = sft_policy()
    docs = documents(args.eval_docs, seed=5)
    out: dict[str, Any] = {"args": vars(args), "sft": evaluate_point(sft, sft, tok, docs), "rl": [], "warp": []}
    log(f"SFT: {out['sft']}")
    common = dict(init_checkpoint=str(sft_path), generation=copy.deepcopy(GEN), prompts_per_step=args.prompts_per_step,
                  lr=args.lr)

    # ---------------------------------------------------------------- WARP
    t0 = time.time()
    torch.manual_seed(0)
    env = make_text_env(TextEnvConfig(), seed=100, reward_fn=CheckerReward())
    wcfg = WarpConfig(**common, num_policies=args.num_policies, steps_per_run=args.steps_per_run,
                      iterations=args.iterations)
    warp = make_warp(wcfg, env, tokenizer=tok, seed=0).learner
    scratch = copy.deepcopy(warp.lm)

    def at(sd: dict[str, torch.Tensor]) -> dict[str, float]:
        scratch.load_state_dict(sd)
        return evaluate_point(scratch, sft, tok, docs)

    for it in range(args.iterations):
        for _ in range(args.num_policies * args.steps_per_run):
            warp.step()
        last = warp.last_iteration
        init, runs, slerp = last["init"], last["runs"], last["slerp"]
        deltas = [task_vector(r, init) for r in runs]
        row: dict[str, Any] = {"iteration": it, "init": at(init), "runs": [at(r) for r in runs], "slerp": at(slerp),
                               "liti": [{"eta": e, **at(liti(init, slerp, e))} for e in args.etas],
                               "run_paths": [[{"eta": e, **at(lerp_state_dicts(init, r, e))} for e in args.etas]
                                             for r in runs],
                               "task_vector_cosine": cosine_similarity(deltas[0], deltas[-1]),
                               "task_vector_norms": [state_dict_norm(d) for d in deltas],
                               "slerp_norm": state_dict_norm(task_vector(slerp, init))}
        out["warp"].append(row)
        log(f"WARP iteration {it} ({time.time() - t0:.0f}s): runs {row['runs']} slerp {row['slerp']} "
            f"liti(0.3) {next(p for p in row['liti'] if abs(p['eta'] - 0.3) < 1e-9) if 0.3 in args.etas else ''} "
            f"cos {row['task_vector_cosine']:.3f}")
        (RESULTS / f"results{args.tag}.json").write_text(json.dumps(out, indent=1))
    out["warp_seconds"] = time.time() - t0

    # ---------------------------------------------------------------- plain RL at several betas
    if args.reuse_rl:
        out["rl"] = json.loads((RESULTS / "results.json").read_text())["rl"]
    for beta in [] if args.reuse_rl else args.betas:
        t0 = time.time()
        torch.manual_seed(0)
        env = make_text_env(TextEnvConfig(), seed=100, reward_fn=CheckerReward())
        learner = make_ppo_lm(PpoLmConfig(**common, algo="rloo", samples_per_prompt=2, ppo_epochs=1, kl_coef=beta),
                              env, tokenizer=tok, seed=0).learner
        curve = []
        for step in range(1, args.rl_steps + 1):
            learner.step()
            if step % args.eval_every == 0:
                curve.append({"step": step, **evaluate_point(learner.policy.lm, sft, tok, docs)})
        out["rl"].append({"beta": beta, "curve": curve, "seconds": time.time() - t0})
        log(f"RL beta={beta} ({time.time() - t0:.0f}s): {curve[-1]}")
        (RESULTS / f"results{args.tag}.json").write_text(json.dumps(out, indent=1))
    plot(out, RESULTS / f"warp_front{args.tag}.png")
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
