"""Shared pieces of the WARM / WARP / BOND experiments on the embedded synthetic summarisation task.

* the SFT policy: the tiny Gemma 2 of rlkit2.lm (LMConfig defaults) fine-tuned on `sft_example` rows (25 %
  corrupted statements, an imperfect SFT policy), cached as an rlkit2 checkpoint `{"lm": state_dict}` -- the
  format `agent.init_checkpoint` reads. It stays a study helper (rlkit2.lm.sft): the runner has no SFT family;
* the exact-checker score: precision of the summary's statements (supported / statements, 0 for an empty or
  malformed summary), computed by rlkit2.lm.synthetic.check. `true_scores` is also the RL runs' reward, as
  `reward=callable reward.target=experiments.warm.common:true_scores` (conf/experiment/*_synthetic*.yaml);
* launching a study's training runs through the runner (`launch`: `rlkit2-train <overrides>` in process) and
  evaluating a run's checkpoints (`run_checkpoints`, `evaluate_point`) on fixed held-out documents;
* preference pairs labelled by that checker (ties dropped), with optional label noise.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rlkit2 import checkpoint
from rlkit2.lm import synthetic as S
from rlkit2.lm.generation import GenerationConfig, LMActor
from rlkit2.lm.models import LMConfig, build_causal_lm, build_word_tokenizer
from rlkit2.rewards.bradley_terry import PreferencePair, synthetic_preference_pairs

TEMPLATE = "<doc> {document} <sum>"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
GEN = GenerationConfig(max_new_tokens=24)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def true_score(document: str, summary: str) -> float:
    c = S.check(document, summary)
    return c.supported / c.n_statements if c.n_statements else 0.0


def true_scores(documents: list[str], summaries: list[str]) -> torch.Tensor:
    return torch.tensor([true_score(d, s) for d, s in zip(documents, summaries, strict=True)], dtype=torch.float32)


def tokenizer() -> Any:
    return build_word_tokenizer(S.vocabulary())


def sft_policy(steps: int = 3000, seed: int = 0, path: Path | None = None) -> tuple[Any, Any, Path]:
    """(lm, tokenizer, checkpoint path); trains once and caches."""
    from rlkit2.lm.sft import sft_train

    tok = tokenizer()
    path = path or ARTIFACTS / f"sft_s{seed}_{steps}.pt"
    lm = build_causal_lm(LMConfig(), tok, seed=seed)
    if path.is_file():
        lm.load_state_dict(checkpoint.load(path)["lm"])
        return lm.eval(), tok, path
    rng = random.Random(seed)
    rows = [S.sft_example(rng, 0.25) for _ in range(8000)]
    log(f"SFT: {steps} steps")
    sft_train(lm, tok, rows, steps=steps, batch_size=32, lr=3e-3, seed=seed,
              format_prompt=lambda d: TEMPLATE.format(document=d), log_every=500,
              callback=lambda s, loss: log(f"  sft step {s} loss {loss:.3f}"))
    checkpoint.save({"lm": lm.state_dict()}, path)
    return lm.eval(), tok, path


def documents(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [S.render(S.random_document(rng)) for _ in range(n)]


@torch.no_grad()
def sample(lm: Any, tok: Any, docs: list[str], k: int = 1, seed: int | None = None, batch: int = 256) -> list[str]:
    """k samples per document (contiguous), temperature 1."""
    if seed is not None:
        torch.manual_seed(seed)
    actor = LMActor(lm, tok, GEN)
    out: list[str] = []
    per = max(1, batch // k)
    for i in range(0, len(docs), per):
        out += actor.rollout([TEMPLATE.format(document=d) for d in docs[i: i + per]], num_samples=k).texts
    return out


def launch(overrides: list[str], run_dir: Path, reuse: bool = False) -> dict[str, float]:
    """One training run through the runner, exactly as `rlkit2-train <overrides> hydra.run.dir=<run_dir>` makes it
    (rlkit2.train.run on the composed config). `reuse`: a run whose last checkpoint is already in `run_dir`
    (same overrides, recorded in its .hydra/overrides.yaml) is not trained again."""
    from omegaconf import OmegaConf

    from rlkit2.run_config import OVERRIDES_FILE
    from rlkit2.train import compose, run

    quiet = ["trainer.progress=false", "trainer.plot=false", "logger.console=false"]
    overrides = [*quiet, *overrides]
    cfg = compose(overrides)
    saved = run_dir / OVERRIDES_FILE
    done = checkpoint.list_checkpoints(run_dir / "checkpoints")
    if reuse and done and done[-1][0] == int(cfg.trainer.total_steps) and saved.is_file() \
            and list(OmegaConf.load(saved)) == overrides:
        log(f"reusing {run_dir} ({' '.join(overrides[len(quiet):])})")
        return {}
    log(f"rlkit2-train {' '.join(overrides[len(quiet):])} hydra.run.dir={run_dir}")
    return run(cfg, run_dir, overrides)


def run_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of a run's checkpoints, oldest first (trainer.keep_checkpoints must keep those wanted)."""
    return checkpoint.list_checkpoints(run_dir / "checkpoints")


def policy_lm(learner: Any) -> Any:
    """The causal LM a language learner trains (ppo_lm's sits in a PolicyWithValue; warp, jbond expose `lm`)."""
    return getattr(learner, "lm", None) or learner.policy.lm


@torch.no_grad()
def evaluate_point(lm: Any, reference: Any, tok: Any, docs: list[str], seed: int = 1234) -> dict[str, float]:
    """Checker score, KL(pi || reference) (the k1 estimate from the policy's own samples, summed over tokens) and
    words of one temperature-1 sample per document; the same sampling seed for every point of a front."""
    from rlkit2.lm.generation import response_logprobs

    torch.manual_seed(seed)
    ro = LMActor(lm, tok, GEN).rollout([TEMPLATE.format(document=d) for d in docs])
    lp = response_logprobs(lm, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask)["logprobs"]
    rp = response_logprobs(reference, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask)["logprobs"]
    kl = ((lp - rp) * ro.response_mask).sum(1)
    return {"reward": float(true_scores(docs, ro.texts).mean()), "kl": float(kl.mean()),
            "words": sum(len(t.split()) for t in ro.texts) / len(docs)}


def preference_pairs(n: int, seed: int, lm: Any = None, tok: Any = None, policy_fraction: float = 0.5
                     ) -> list[PreferencePair]:
    """The experiment's pairs: `rlkit2.rewards.bradley_terry.synthetic_preference_pairs` with half of them from
    two samples of the SFT policy (temperature 1) and no label noise (run.py flips labels itself)."""
    sampler = None if lm is None else (lambda docs, s: sample(lm, tok, docs, k=2, seed=s))
    return synthetic_preference_pairs(n, seed=seed, policy_samples=sampler, policy_fraction=policy_fraction)


if __name__ == "__main__":
    torch.set_num_threads(1)
    lm, tok, p = sft_policy()
    docs = documents(256, 99)
    outs = sample(lm, tok, docs, seed=0)
    log(f"SFT policy {p}: true score {float(true_scores(docs, outs).mean()):.3f} "
        f"{S.consistency_metrics(docs, outs)}")
