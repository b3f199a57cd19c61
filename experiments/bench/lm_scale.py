"""Real-size check of the PPO agent for HF causal LMs (`agent=ppo_lm`): a randomly initialised Gemma 2 model
trained for a few PPO iterations in fp32, bf16 with fp32 master weights, fp32 + LoRA, bf16 + LoRA and with
gradient checkpointing.

    OMP_NUM_THREADS=1 python experiments/bench/lm_scale.py --size cpu --device cpu      # here: ~8M params, minutes
    python experiments/bench/lm_scale.py --size full --device cuda --threads 8           # on a GPU: ~110M params

Model (no weights are downloaded): `LMConfig(arch="gemma2", ...)` built by `rlkit2.lm.models.build_causal_lm`
(eager attention, interleaved sliding/global layers, logit soft-capping, GQA, tied embeddings).
  --size full: hidden 768, 12 layers, 12 heads (4 KV heads), intermediate 3072, vocabulary 8192 -> ~110M params
  --size cpu:  hidden 256,  6 layers,  4 heads (2 KV heads), intermediate 1024, vocabulary 8192 -> ~8M params
The vocabulary is the synthetic task's word-level tokenizer (`rlkit2.lm.synthetic.vocabulary()`, the one the
tests use, 44 words) padded with dummy words `w<i>` to --vocab entries, so the embedding/LM-head and the [B, L, V]
logits have a realistic share of the work (Gemma 2's own 256k vocabulary would make the embedding alone ~200M at
hidden 768). Prompts are the synthetic-summary documents of the text env ("<doc> ... <sum>", ~20-35 tokens).
The reward is dense so that every iteration has a real learning signal (a keyword reward is ~always 0 for a random
policy over 8k tokens, and then PPO's advantages are 0 or, in fp32, whitened rounding noise): the share of the
response's words that are dummy words with an even index (`w0`, `w2`, ...), ~0.5 for a random policy. Every
response is exactly --new-tokens long (min_new_tokens = max_new_tokens).

Settings (--settings, comma separated): fp32; bf16 (model.dtype=bfloat16, agent.precision=auto -> fp32 master
weights); fp32-lora / bf16-lora (agent.model.lora.r=8, alpha 16, on q/k/v/o_proj; the reference is the
adapter-disabled model, no copy); fp32-gc / bf16-lora-gc (agent.model.gradient_checkpointing=true). Each setting
runs in its own spawned process (clean memory high-water): build, --warmup iterations, --iters timed iterations.
PPO: --prompts prompts a rollout, 1 sample each, minibatch --minibatch, --epochs epochs, lr --lr, kl 0.05.

Reported per setting:
  params total / trainable: the policy (LM incl. LoRA adapters + value head); the reference copy (non-LoRA) is not
    counted. trainable = parameters with requires_grad (what Adam steps).
  tokens/s = (generated tokens + trained tokens) / wall time of the timed iterations, where generated = response
    tokens sampled in the rollouts and trained = epochs x (prompt + response tokens, padding excluded) of the
    sequences that went through the training forward/backward. gen tok/s = generated / rollout time (generation,
    behaviour + reference log-probs, reward), train tok/s = trained / learner time (the PPO updates).
  peak memory: CPU: the process's RSS high-water (`resource.getrusage(RUSAGE_SELF).ru_maxrss`) minus the RSS
    after imports, before the model is built (policy + reference + Adam state + grads + activations + allocator
    slack). CUDA: `torch.cuda.max_memory_allocated()` over the whole run (model build included), and reserved.
    Both are read before the weight comparison below.
  changed (base): fraction of the LM's base weights (LoRA adapters excluded) whose value differs after all
    warmup + timed iterations, elementwise, in the model's own dtype (bf16: the bf16 weights the model computes
    with, not the fp32 master). Under LoRA this must be 0. changed (trainable): the same over the trained
    parameters (LoRA: the adapters + value head). The initial weights are kept on disk (a temp file), not in memory.
  wall s: the timed iterations; total s: the whole child process (build included).

Device: `--device cuda` sets `agent.model.device="cuda"` (LMConfig.device: `build_causal_lm` moves the model
there; the actor moves tokenised prompts to the model's device; replay, losses and the optimiser follow the
parameters). Timing synchronises CUDA around each iteration. The fused Adam, the KVDecoder (fp32 non-LoRA only;
bf16 and LoRA run the HF forward) and eager attention run as in training. On a GPU, run the full size as above;
--threads only sets the CPU threads torch uses.

TRL comparison (experiments/bench/rlhf.py): TRL's RLOOConfig defaults to `gradient_checkpointing=True`
(TrainingArguments' default is False) while ppo_lm defaults to `agent.model.gradient_checkpointing=false`; a fair
comparison must set both the same way. rlhf.py passes `gradient_checkpointing=args.gradient_checkpointing` to TRL
and applies the same setting to the rlkit2 policy (default off on both sides).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SIZES: dict[str, dict[str, int]] = {
    "full": dict(hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, intermediate_size=3072),
    "cpu": dict(hidden_size=256, num_layers=6, num_heads=4, num_kv_heads=2, intermediate_size=1024),
}
SETTINGS: dict[str, dict[str, Any]] = {
    "fp32": dict(dtype="float32"),
    "bf16": dict(dtype="bfloat16"),
    "fp32-lora": dict(dtype="float32", lora=8),
    "bf16-lora": dict(dtype="bfloat16", lora=8),
    "fp32-gc": dict(dtype="float32", gc=True),
    "bf16-lora-gc": dict(dtype="bfloat16", lora=8, gc=True),
}


def tokenizer(vocab: int) -> Any:
    from rlkit2.lm.models import build_word_tokenizer
    from rlkit2.lm.synthetic import vocabulary

    words = vocabulary()
    extra = max(0, vocab - 4 - len(words))  # 4 special tokens
    return build_word_tokenizer(words + [f"w{i}" for i in range(extra)])


def even_word_share(documents: list[str], responses: list[str]) -> list[float]:
    """The dense toy reward: the share of response words that are even-indexed dummy words."""
    out = []
    for r in responses:
        words = r.split()
        out.append(sum(w[:1] == "w" and w[1:].isdigit() and int(w[1:]) % 2 == 0 for w in words) / max(len(words), 1))
    return out


def run_setting(args: argparse.Namespace, name: str) -> dict[str, Any]:
    t_start = time.perf_counter()
    import psutil
    import torch

    torch.set_num_threads(args.threads)
    from rlkit2.envs.text import TextEnvConfig, make_text_env

    from rlkit2.agents.ppo_lm.builder import make_agent
    from rlkit2.agents.ppo_lm.config import PpoLmConfig
    from rlkit2.lm.adapters import LoraConfig
    from rlkit2.lm.fast_decode import unsupported_reason
    from rlkit2.lm.generation import GenerationConfig
    from rlkit2.lm.models import LMConfig
    from rlkit2.rewards.base import CallableReward

    s = SETTINGS[name]
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats()
    rss0 = psutil.Process().memory_info().rss
    tok = tokenizer(args.vocab)
    model = LMConfig(arch="gemma2", **SIZES[args.size], max_position_embeddings=512, sliding_window=4096,
                     dtype=s["dtype"], device=args.device, lora=LoraConfig(r=s.get("lora", 0), alpha=16.0),
                     gradient_checkpointing=s.get("gc", False))
    cfg = PpoLmConfig(model=model, generation=GenerationConfig(max_new_tokens=args.new_tokens,
                                                               min_new_tokens=args.new_tokens),
                      prompts_per_step=args.prompts, minibatch_size=args.minibatch, ppo_epochs=args.epochs,
                      lr=args.lr, kl_coef=0.05, precision="auto")
    env = make_text_env(TextEnvConfig(), 0, reward_fn=CallableReward(even_word_share))
    torch.manual_seed(0)
    learner = make_agent(cfg, env, seed=0, tokenizer=tok).learner
    policy = learner.policy
    why = unsupported_reason(policy.lm)
    path = "KVDecoder" if why is None else "HF forward"
    params = dict(policy.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    base = {n for n in params if n.startswith("lm.") and "lora_" not in n}
    # initial weights on disk (not in memory, so they do not count towards the peak)
    snap = Path(tempfile.mkdtemp(prefix="lm_scale_")) / "init.pt"
    torch.save({n: p.detach().cpu() for n, p in params.items()}, snap)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        learner.step()
    gen_tok = train_tok = 0.0
    roll_s = learn_s = 0.0
    per_iter = []
    for _ in range(args.iters):
        sync()
        t0 = time.perf_counter()
        m = learner.step()
        sync()
        dt = time.perf_counter() - t0
        b = learner.replay.all()
        g = float(b.response_mask.sum())
        tr = float(b.query_mask.sum() + b.response_mask.sum()) * cfg.ppo_epochs
        gen_tok, train_tok = gen_tok + g, train_tok + tr
        roll_s += dt - m["time/learn_s"]
        learn_s += m["time/learn_s"]
        per_iter.append({"s": dt, "learn_s": m["time/learn_s"], "gen_tokens": g, "train_tokens": tr,
                         "kl": float(m["train/kl"]), "loss": float(m["train/loss"]),
                         "score": float(m["train/score"])})
    wall = roll_s + learn_s
    mem: dict[str, float] = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                             "rss_after_imports_mb": rss0 / 2**20}
    mem["peak_mem_mb"] = mem["peak_rss_mb"] - mem["rss_after_imports_mb"]
    if cuda:
        mem["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        mem["cuda_max_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
        mem["peak_mem_mb"] = mem["cuda_max_allocated_mb"]
    init = torch.load(snap, mmap=True)

    def changed(names: set[str], init: dict[str, Any]) -> float:
        tot = diff = 0
        for n in names:
            now = params[n].detach().cpu()
            diff += int((now != init[n]).sum())
            tot += now.numel()
        return diff / max(tot, 1)

    out = {"setting": name, "dtype": s["dtype"], "lora_r": s.get("lora", 0),
           "gradient_checkpointing": s.get("gc", False),
           "forward_path": path if why is None else f"{path} ({why})",
           "master_weights": learner.master_params is not None,
           "params_total": sum(p.numel() for p in params.values()),
           "params_trainable": sum(params[n].numel() for n in trainable),
           "params_base": sum(params[n].numel() for n in base),
           "gen_tokens": gen_tok, "train_tokens": train_tok, "tokens_per_s": (gen_tok + train_tok) / wall,
           "gen_tokens_per_s": gen_tok / roll_s, "train_tokens_per_s": train_tok / learn_s,
           "rollout_s": roll_s, "learn_s": learn_s, "wall_s": wall, **mem,
           "changed_base": changed(base, init), "changed_trainable": changed(trainable, init),
           "iters": args.iters, "warmup": args.warmup, "per_iter": per_iter, "threads": torch.get_num_threads()}
    del init
    snap.unlink()
    snap.parent.rmdir()
    out["total_s"] = time.perf_counter() - t_start
    return out


def _child(name: str, args: argparse.Namespace, q: Any) -> None:
    try:
        q.put(run_setting(args, name))
    except Exception as e:  # noqa: BLE001 - report, do not hang the parent
        import traceback

        q.put({"setting": name, "error": f"{e!r}\n{traceback.format_exc()}"})


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from experiments import provenance

    info = {"cpu": provenance.cpu_model(), "cores": os.cpu_count(), "threads": args.threads,
            "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "load1_start": os.getloadavg()[0]}
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def fmt_m(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def table(rows: list[dict[str, Any]], device: str) -> str:
    mem = "peak CUDA alloc MB" if device == "cuda" else "peak RSS delta MB"
    lines = [f"| setting | params total | trainable | forward | tok/s | gen tok/s | train tok/s | {mem} | "
             "base changed | trainable changed | wall s | total s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['setting']} | error: {r['error'].splitlines()[0][:80]} |" + " |" * 10)
            continue
        lines.append(f"| {r['setting']} | {fmt_m(r['params_total'])} | {fmt_m(r['params_trainable'])} | "
                     f"{r['forward_path'].split(' (')[0]} | {r['tokens_per_s']:.0f} | {r['gen_tokens_per_s']:.0f} | "
                     f"{r['train_tokens_per_s']:.0f} | {r['peak_mem_mb']:.0f} | {r['changed_base']:.4f} | "
                     f"{r['changed_trainable']:.4f} | {r['wall_s']:.1f} | {r['total_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="cpu")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--settings", default="fp32,bf16,fp32-lora,bf16-lora,fp32-gc,bf16-lora-gc")
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--minibatch", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=360.0, help="seconds per setting (its process is ended after)")
    p.add_argument("--out", default="", help="default experiments/bench/results/lm_scale_<size>_<device>.json")
    args = p.parse_args()
    out = Path(args.out or f"experiments/bench/results/lm_scale_{args.size}_{args.device}.json")
    info = machine_info(args)
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.settings.split(","):
        if name not in SETTINGS:
            raise SystemExit(f"unknown setting {name!r}; expected some of {sorted(SETTINGS)}")
        q = ctx.Queue()
        proc = ctx.Process(target=_child, args=(name, args, q))
        proc.start()
        try:
            res = q.get(timeout=args.timeout)
        except queue.Empty:
            res = {"setting": name, "error": f"timed out after {args.timeout:.0f} s"}
            proc.terminate()
        proc.join()
        rows.append(res)
        print(json.dumps(res) if "error" in res else
              f"{name}: {res['tokens_per_s']:.0f} tok/s, peak {res['peak_mem_mb']:.0f} MB, "
              f"changed base {res['changed_base']:.4f}, {res['total_s']:.0f} s", flush=True)
    info["load1_end"] = os.getloadavg()[0]
    ok = next((r for r in rows if "error" not in r), None)
    head = (f"Gemma 2 random init, --size {args.size} ({', '.join(f'{k} {v}' for k, v in SIZES[args.size].items())}, "
            f"vocab {args.vocab}), device {args.device}, {args.threads} thread(s); {args.prompts} prompts x 1 sample, "
            f"{args.new_tokens} new tokens, minibatch {args.minibatch}, {args.epochs} epochs, lr {args.lr}, "
            f"{args.warmup} warmup + {args.iters} timed iterations"
            + (f", {ok['params_total'] / 1e6:.1f}M params" if ok else ""))
    md = (f"# lm_scale: --size {args.size} --device {args.device}\n\n{head}\n\n{table(rows, args.device)}\n\n"
          f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, transformers "
          f"{info['transformers']}, peft {info['peft']}, {info['date']}, load average {info['load1_start']:.2f} -> "
          f"{info['load1_end']:.2f}.\n")
    print("\n" + md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "machine": info, "model": SIZES[args.size], "rows": rows},
                              indent=1))
    out.with_suffix(".md").write_text(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
