"""Benchmark: one RL iteration of rlkit2's PPO / RLOO vs TRL 1.16's RLOOTrainer, same tiny Gemma 2, same work.

    python experiments/bench/rlhf.py [--rounds 7 --iters 10] [--prompts 8 --samples 4 --new-tokens 16] [--out ...json]

Both sides: the same randomly initialised tiny Gemma 2 (eager attention, float32, 1 CPU thread), the same
synthetic-summary prompts, the same toy reward (a Python callable), generation of exactly --new-tokens tokens
(min = max, so lengths match), KL coefficient 0.05 to a frozen reference (reference log-probs computed),
prompts x samples sequences a rollout, minibatches of --minibatch, one optimisation epoch, and gradient
checkpointing set alike on both sides (--gradient-checkpointing; default off: TRL's RLOOConfig defaults to
gradient_checkpointing=True, TrainingArguments and rlkit2's agent.model.gradient_checkpointing to False, so it is
passed to TRL explicitly).
TRL's PPO trainer no longer exists in 1.16, so its RLOOTrainer is the peer; rlkit2 is timed both as PPO
(value head on the shared trunk, GAE) and as RLOO (the like-for-like algorithm).

Measured per iteration (after --warmup iterations): rollout = generate + behaviour/reference log-probs
(+ values) + reward; learner = the optimisation passes. Rollout tokens/s = generated tokens / rollout s;
learner samples/s = sequences optimised / learner s. The systems alternate for --rounds rounds (the machine
is shared; the 1-minute load average before/after each run is recorded); each number is the median over rounds of
the per-round value. Memory: each system runs in its own
spawned process; `peak_rss_mb` is the process's peak RSS, `iter_peak_mb` the peak RSS above the level just before the
timed iterations (sampled every 2 ms), i.e. the working memory of an iteration.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class RssSampler:
    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.002)

    def stop(self) -> float:
        self._stop = True
        self._t.join()
        return (self.peak - self.base) / 2**20


def reward_fn(documents: list[str], responses: list[str]) -> list[float]:
    return [float("paris" in r.split()) for r in responses]


def setup(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    import torch

    torch.set_num_threads(1)
    from rlkit2.lm.models import LMConfig, build_causal_lm, build_word_tokenizer
    from rlkit2.lm.synthetic import documents, vocabulary

    tok = build_word_tokenizer(vocabulary())
    lm = build_causal_lm(LMConfig(arch="gemma2", hidden_size=args.hidden, num_layers=args.layers, num_heads=4,
                                  num_kv_heads=2, intermediate_size=2 * args.hidden), tok, seed=0)
    stream = documents(0)
    docs = [next(stream) for _ in range(args.prompts * (args.iters + args.warmup + 2))]
    return lm, tok, docs


def run_rlkit2(args: argparse.Namespace, system: str) -> dict[str, Any]:
    # "ppo" / "rloo"; "-hf": the same through the transformers modules (no KVDecoder), an ablation
    algo, hf = system.removesuffix("-hf"), system.endswith("-hf")
    import torch
    from rlkit2.envs.text import TextEnvConfig, make_text_env

    from rlkit2.agents.ppo_lm.config import PpoLmConfig
    from rlkit2.agents.ppo_lm.learner import PolicyGradientLearner
    from rlkit2.lm.generation import GenerationConfig
    from rlkit2.lm.models import PolicyWithValue, freeze
    from rlkit2.rewards.base import CallableReward

    lm, tok, _ = setup(args)
    import copy

    ref = freeze(copy.deepcopy(lm))
    if args.gradient_checkpointing:  # the policy only, as agent.model.gradient_checkpointing does
        from rlkit2.lm.adapters import enable_gradient_checkpointing

        enable_gradient_checkpointing(lm)
    k = args.samples if algo == "rloo" else 1
    cfg = PpoLmConfig(algo=algo, prompts_per_step=args.prompts * args.samples // k, samples_per_prompt=k,
                      minibatch_size=args.minibatch, ppo_epochs=1, lr=1e-5, kl_coef=0.05,
                      generation=GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                                  kv_decoder=not hf))
    # min = max: exactly new_tokens tokens for every sequence, as on the TRL side
    env = make_text_env(TextEnvConfig(), 0, reward_fn=CallableReward(reward_fn))
    learner = PolicyGradientLearner(cfg, PolicyWithValue(lm, value_head=algo == "ppo"), ref, tok, env)
    for _ in range(args.warmup):
        learner.step()
    sampler = RssSampler()
    roll_s, learn_s, toks, seqs = [], [], [], []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        m = learner.step()
        total = time.perf_counter() - t0
        roll_s.append(total - m["time/learn_s"])  # generate + log-probs/values + reward + advantages
        learn_s.append(m["time/learn_s"])
        toks.append(float(m["rollout/response_tokens"]))
        seqs.append(float(m["rollout/sequences"]) * cfg.ppo_epochs)
    iter_mb = sampler.stop()
    del torch
    return summarise(f"rlkit2 {algo.upper()}" + (" (HF modules)" if hf else ""), roll_s, learn_s, toks, seqs, iter_mb)


def run_trl(args: argparse.Namespace) -> dict[str, Any]:
    import datasets
    import trl

    lm, tok, docs = setup(args)
    # TRL builds its reference model from the policy's path: hand it the same weights on disk
    path = Path("/tmp/rlkit2_bench_trl/model")
    lm.save_pretrained(path)
    tok.save_pretrained(path)
    prompts = [f"<doc> {d} <sum>" for d in docs]
    ds = datasets.Dataset.from_dict({"prompt": prompts})

    def trl_reward(prompts: list[str], completions: list[str], **_: Any) -> list[float]:
        return reward_fn(prompts, completions)

    gen_batch = args.prompts * args.samples
    steps_per_gen = gen_batch // args.minibatch
    total_iters = args.warmup + args.iters
    cfg = trl.RLOOConfig(output_dir="/tmp/rlkit2_bench_trl", use_cpu=True, bf16=False, report_to="none",
                         per_device_train_batch_size=args.minibatch, gradient_accumulation_steps=1,
                         steps_per_generation=steps_per_gen, num_generations=args.samples, num_iterations=1,
                         max_completion_length=args.new_tokens, beta=0.05, learning_rate=1e-5, logging_steps=10_000,
                         save_strategy="no", max_steps=total_iters * steps_per_gen, temperature=1.0,
                         gradient_checkpointing=args.gradient_checkpointing,  # TRL's own default is True
                         dataloader_num_workers=0, seed=0, disable_tqdm=True,
                         generation_kwargs={"min_new_tokens": args.new_tokens},
                         model_init_kwargs={"attn_implementation": "eager", "dtype": "float32"})
    trainer = trl.RLOOTrainer(model=str(path), reward_funcs=trl_reward, args=cfg, train_dataset=ds,
                              processing_class=tok)
    rec: dict[str, list[float]] = {"gen": [], "step": [], "toks": []}
    orig_gen = trainer._generate_and_score_completions
    orig_step = trainer.training_step

    def timed_gen(inputs: Any) -> Any:
        t0 = time.perf_counter()
        out = orig_gen(inputs)
        rec["gen"].append(time.perf_counter() - t0)
        rec["toks"].append(float(out["completion_mask"].sum()))
        return out

    def timed_step(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        out = orig_step(*a, **k)
        rec["step"].append(time.perf_counter() - t0)
        return out

    trainer._generate_and_score_completions = timed_gen
    trainer.training_step = timed_step
    state: dict[str, Any] = {}

    from transformers import TrainerCallback

    class StartSampler(TrainerCallback):
        def on_step_begin(self, a, s, c, **kw):  # noqa: ANN001, ANN003
            if s.global_step == args.warmup * steps_per_gen and "sampler" not in state:
                state["sampler"] = RssSampler()

    trainer.add_callback(StartSampler())
    trainer.train()
    iter_mb = state["sampler"].stop()
    # one iteration = one generation + steps_per_gen training steps (training_step time includes the generation)
    gens, toks = rec["gen"][args.warmup :], rec["toks"][args.warmup :]
    steps = rec["step"][args.warmup * steps_per_gen :]
    roll_s, learn_s = [], []
    for i, g in enumerate(gens):
        it_steps = sum(steps[i * steps_per_gen : (i + 1) * steps_per_gen])
        roll_s.append(g)
        learn_s.append(it_steps - g)
    return summarise(f"TRL {trl.__version__} RLOOTrainer", roll_s, learn_s, toks, [float(gen_batch)] * len(gens),
                     iter_mb)


def summarise(name: str, roll_s: list[float], learn_s: list[float], toks: list[float], seqs: list[float],
              iter_mb: float) -> dict[str, Any]:
    return {"system": name, "iters": len(roll_s), "rollout_s": statistics.median(roll_s),
            "learn_s": statistics.median(learn_s), "iteration_s": statistics.median([a + b for a, b in
                                                                                  zip(roll_s, learn_s, strict=True)]),
            "rollout_tokens_per_s": sum(toks) / sum(roll_s), "learner_samples_per_s": sum(seqs) / sum(learn_s),
            "tokens_per_iter": statistics.mean(toks), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF)
            .ru_maxrss / 1024, "iter_peak_mb": iter_mb}


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over rounds of each metric (memory: max over rounds)."""
    good = [r for r in results if "error" not in r]
    if not good:
        return results[0]
    out: dict[str, Any] = {"system": good[0]["system"], "rounds": len(good), "per_round": good}
    for k in ("rollout_s", "learn_s", "iteration_s", "rollout_tokens_per_s", "learner_samples_per_s",
              "tokens_per_iter"):
        out[k] = statistics.median(r[k] for r in good)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in good)
    out["iter_peak_mb"] = max(r["iter_peak_mb"] for r in good)
    return out


def _child(which: str, args: argparse.Namespace, q: Any) -> None:
    try:
        q.put(run_trl(args) if which == "trl" else run_rlkit2(args, which))
    except Exception as e:  # noqa: BLE001 - report, do not hang the parent
        import traceback

        q.put({"system": which, "error": f"{e!r}\n{traceback.format_exc()}"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--minibatch", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--systems", default="ppo,rloo,trl",
                   help="ppo, rloo, trl; ppo-hf / rloo-hf: rlkit2 through the transformers modules (no KVDecoder)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="checkpoint activations on both sides (default: off on both; TRL's own default is on)")
    p.add_argument("--out", default="experiments/bench/results/rlhf.json")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    runs: dict[str, list[dict[str, Any]]] = {}
    # systems alternate, round after round, so load from other jobs on a shared machine hits all of them alike
    for rnd in range(args.rounds):
        for which in args.systems.split(","):
            q = ctx.Queue()
            load_before = os.getloadavg()[0]
            proc = ctx.Process(target=_child, args=(which, args, q))
            proc.start()
            res = q.get()
            proc.join()
            res["load1"] = [load_before, os.getloadavg()[0]]  # 1-minute load average before/after (shared machine)
            runs.setdefault(which, []).append(res)
            print(json.dumps(res) if "error" in res else f"round {rnd}: {res['system']} "
                  f"{res['rollout_tokens_per_s']:.0f} tok/s, {res['learner_samples_per_s']:.0f} samples/s", flush=True)
    rows = [combine(v) for v in runs.values()]
    ok = [r for r in rows if "error" not in r]
    trl_row = next((r for r in ok if r["system"].startswith("TRL")), None)
    hdr = (f"{'system':32s} {'rollout tok/s':>13s} {'learner samp/s':>14s} {'iter s':>7s} {'peak RSS MB':>11s} "
           f"{'iter mem MB':>11s}")
    print(f"\nGemma 2 tiny (hidden {args.hidden}, {args.layers} layers), {args.prompts}x{args.samples} sequences, "
          f"{args.new_tokens} new tokens, minibatch {args.minibatch}, 1 CPU thread\n" + hdr)
    for r in ok:
        line = (f"{r['system']:32s} {r['rollout_tokens_per_s']:13.1f} {r['learner_samples_per_s']:14.1f} "
                f"{r['iteration_s']:7.3f} {r['peak_rss_mb']:11.0f} {r['iter_peak_mb']:11.1f}")
        if trl_row is not None and r is not trl_row:
            r["rollout_speedup_vs_trl"] = r["rollout_tokens_per_s"] / trl_row["rollout_tokens_per_s"]
            r["learner_speedup_vs_trl"] = r["learner_samples_per_s"] / trl_row["learner_samples_per_s"]
            r["iteration_speedup_vs_trl"] = trl_row["iteration_s"] / r["iteration_s"]
            line += (f"   x{r['rollout_speedup_vs_trl']:.2f} rollout, x{r['learner_speedup_vs_trl']:.2f} learner, "
                     f"x{r['iteration_speedup_vs_trl']:.2f} iteration")
        print(line)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    loads = [x for v in runs.values() for r in v for x in r.get("load1", [])]
    if loads:
        print(f"1-minute load average during the runs: {min(loads):.2f} - {max(loads):.2f} ({os.cpu_count()} CPUs)")
    out.write_text(json.dumps({"args": vars(args), "cpus": os.cpu_count(), "load1_range": [min(loads), max(loads)]
                               if loads else None, "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
