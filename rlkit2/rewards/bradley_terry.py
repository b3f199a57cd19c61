"""Reward models from preferences: the Bradley-Terry loss, pairwise accuracy, preference-pair I/O, training.

Bradley-Terry: P(chosen > rejected) = sigmoid(r(x, y_c) - r(x, y_r)); a reward model is fitted by
minimising -log sigmoid(r_c - r_r) over labelled pairs (Christiano et al., 2017; Ouyang et al., 2022;
WARM uses exactly this loss).

A reward model here is any `torch.nn.Module` called as `model(prompts, responses) -> Tensor[B]`
(one scalar a (prompt, response) pair); it tokenises internally. Pairs come from a JSONL file
(one `{"prompt", "chosen", "rejected"}` object a line), a `datasets` dataset (object, local path
or hub name), or a Python list.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlkit2.checkpoint import atomic_write_bytes
from rlkit2.core import ConfigError, DataError
from rlkit2.data.jsonl import iter_jsonl
from rlkit2.learners import optimizer_step


@dataclasses.dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str


# --------------------------------------------------------------------------- losses (pure)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """mean -log sigmoid(r_c - r_r); with label smoothing eps the target is 1 - eps (robust BT)."""
    d = r_chosen - r_rejected
    if label_smoothing == 0.0:
        return -F.logsigmoid(d).mean()
    return -((1.0 - label_smoothing) * F.logsigmoid(d) + label_smoothing * F.logsigmoid(-d)).mean()


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs ranked right; a tie counts one half (a constant model scores 0.5)."""
    return ((r_chosen > r_rejected).float() + 0.5 * (r_chosen == r_rejected).float()).mean()


# --------------------------------------------------------------------------- data


def _pairs_from_rows(rows: Iterable[dict[str, Any]], where: str, keys: tuple[str, str, str],
                     limit: int | None) -> list[PreferencePair]:
    pk, ck, rk = keys
    out: list[PreferencePair] = []
    for i, row in enumerate(rows):
        if limit is not None and len(out) >= limit:
            break
        missing = [k for k in (ck, rk) if k not in row]
        if missing:
            raise DataError(f"{where}: row {i} lacks key(s) {missing}; expected '{pk}' (optional), '{ck}', '{rk}' "
                            f"(got keys {sorted(row)})")
        vals = (row.get(pk, ""), row[ck], row[rk])
        if not all(isinstance(v, str) for v in vals):
            raise DataError(f"{where}: row {i}: '{pk}', '{ck}', '{rk}' must be strings, got "
                            f"{[type(v).__name__ for v in vals]}")
        out.append(PreferencePair(*vals))
    if not out:
        raise DataError(f"{where}: no preference pairs found")
    return out


def load_preference_pairs(source: str | os.PathLike[str] | Any, *, split: str = "train", prompt_key: str = "prompt",
                          chosen_key: str = "chosen", rejected_key: str = "rejected",
                          limit: int | None = None) -> list[PreferencePair]:
    """Read pairs from a JSONL file, a local `datasets` folder / hub name, or a `datasets.Dataset` object."""
    keys = (prompt_key, chosen_key, rejected_key)
    if isinstance(source, (list, tuple)):
        return _pairs_from_rows([dataclasses.asdict(p) if isinstance(p, PreferencePair) else p for p in source],
                                "preference list", keys, limit)
    if not isinstance(source, (str, os.PathLike)):  # a datasets.Dataset / DatasetDict
        ds = source[split] if hasattr(source, "keys") and split in source.keys() else source
        return _pairs_from_rows(iter(ds), f"dataset {getattr(ds, 'info', None) and ds.info.dataset_name}", keys, limit)
    path = Path(source)
    if path.suffix in (".jsonl", ".json") or path.is_file():
        if not path.is_file():
            raise DataError(f"preference file {path} does not exist")

        def rows() -> Iterable[dict[str, Any]]:
            for n, obj in iter_jsonl(path):
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
                yield obj

        return _pairs_from_rows(rows(), str(path), keys, limit)
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - lm extra absent
        raise ConfigError(f"loading {source!r} as a dataset needs `datasets` (pip install rlkit2[lm])") from e
    ds = datasets.load_from_disk(str(path)) if path.is_dir() else datasets.load_dataset(str(source), split=split)
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"dataset {source} has no split '{split}' (has {list(ds)})")
        ds = ds[split]
    return _pairs_from_rows(iter(ds), f"dataset {source}", keys, limit)


def save_preference_pairs(pairs: Sequence[PreferencePair], path: str | os.PathLike[str]) -> Path:
    """Write pairs as JSONL atomically (the format `load_preference_pairs` reads)."""
    text = "".join(json.dumps(dataclasses.asdict(p)) + "\n" for p in pairs)
    atomic_write_bytes(path, text.encode())
    return Path(path)


def flip_labels(pairs: Sequence[PreferencePair], noise: float, seed: int = 0) -> list[PreferencePair]:
    """Label noise: swap chosen and rejected in a random `noise` fraction of the pairs (exactly round(noise*n))."""
    if not 0.0 <= noise <= 1.0:
        raise ConfigError(f"label noise must lie in [0, 1], got {noise}")
    g = torch.Generator().manual_seed(seed)
    n_flip = int(round(noise * len(pairs)))
    flip = set(torch.randperm(len(pairs), generator=g)[:n_flip].tolist())
    return [PreferencePair(p.prompt, p.rejected, p.chosen) if i in flip else p for i, p in enumerate(pairs)]


# --------------------------------------------------------------------------- training / evaluation


RewardModel = Callable[[list[str], list[str]], torch.Tensor]


@dataclasses.dataclass
class BTTrainConfig:
    """Bradley-Terry fine-tuning hyper-parameters (WARM varies lr, dropout, seed and data order)."""

    steps: int = 200
    batch_size: int = 16
    lr: float = 4e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    data_seed: int = 0  # order of the pairs (one WARM diversity source)
    log_every: int = 0


def pair_scores(model: RewardModel, pairs: Sequence[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen, r_rejected) for a batch, in one forward over 2B sequences."""
    prompts = [p.prompt for p in pairs]
    r = model(prompts + prompts, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    return r[: len(pairs)], r[len(pairs):]


@torch.no_grad()
def evaluate_pairs(model: RewardModel, pairs: Sequence[PreferencePair], batch_size: int = 64) -> dict[str, float]:
    """Pairwise accuracy and BT loss of a reward model on held-out pairs (eval mode: no dropout)."""
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
    rc, rr = [], []
    for i in range(0, len(pairs), batch_size):
        c, r = pair_scores(model, pairs[i: i + batch_size])
        rc.append(c.float())
        rr.append(r.float())
    c, r = torch.cat(rc), torch.cat(rr)
    if isinstance(model, nn.Module) and was_training:
        model.train()
    return {"accuracy": float(pairwise_accuracy(c, r)), "loss": float(bradley_terry_loss(c, r)),
            "margin": float((c - r).mean())}


def train_bradley_terry(model: nn.Module, pairs: Sequence[PreferencePair], cfg: BTTrainConfig,
                        params: Iterable[nn.Parameter] | None = None,
                        callback: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Fine-tune `model` in place with the BT loss; returns the mean loss/accuracy of the last 10 % of steps.

    Adam(W) with linear warm-up then constant lr; the pair order is a fixed permutation from
    `cfg.data_seed`, cycled (a second WARM diversity source, independent of the init seed).
    """
    if cfg.steps < 0 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ConfigError(f"BTTrainConfig: need steps >= 0, batch_size >= 1, lr > 0 (got {cfg})")
    if not pairs:
        raise DataError("train_bradley_terry: no training pairs")
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.data_seed)
    order = torch.randperm(len(pairs), generator=g).tolist()
    model.train()
    tail = max(1, cfg.steps // 10)
    losses, accs = [], []
    pos = 0
    for step in range(cfg.steps):
        idx = [order[(pos + j) % len(order)] for j in range(cfg.batch_size)]
        pos += cfg.batch_size
        if cfg.warmup_steps:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
        rc, rr = pair_scores(model, [pairs[i] for i in idx])
        loss = bradley_terry_loss(rc, rr, cfg.label_smoothing)
        if not math.isfinite(float(loss.detach())):
            from rlkit2.core import NumericalError

            raise NumericalError(f"Bradley-Terry loss became {float(loss)} at step {step}")
        optimizer_step(opt, loss, trainable, cfg.grad_clip or None)
        if step >= cfg.steps - tail:
            losses.append(loss.detach())
            accs.append(pairwise_accuracy(rc.detach(), rr.detach()))
        if callback is not None and cfg.log_every and (step + 1) % cfg.log_every == 0:
            callback(step + 1, {"train/bt_loss": float(loss), "train/bt_accuracy": float(pairwise_accuracy(rc, rr))})
    if not losses:
        return {"train/bt_loss": float("nan"), "train/bt_accuracy": float("nan")}
    return {"train/bt_loss": float(torch.stack(losses).mean()), "train/bt_accuracy": float(torch.stack(accs).mean())}


# --------------------------------------------------------------------------- the embedded task's preference pairs


def synthetic_preference_pairs(n: int, seed: int = 0, label_noise: float = 0.0,
                               policy_samples: Callable[[list[str], int], list[str]] | None = None,
                               policy_fraction: float = 0.5, corruption: float = 0.5) -> list[PreferencePair]:
    """n (document, chosen, rejected) pairs of the synthetic summarisation task, labelled by its exact checker.

    Score of a summary: statement precision (supported statements / statements; 0 for an empty summary), from
    `rlkit2.lm.synthetic.check`; the higher-scoring summary is `chosen`, ties are redrawn. Candidates: with
    `policy_samples(documents, seed)` (-> two summaries per document, contiguous), a `policy_fraction` of the pairs
    compares two policy samples (the distribution an RLHF reward model must judge); the rest compare synthetic
    summaries whose statements are each corrupted with probability `corruption`. `label_noise` then swaps
    chosen/rejected in that fraction of the pairs (`flip_labels`).
    """
    import random

    from rlkit2.lm import synthetic as S

    def score(doc: str, summary: str) -> float:
        c = S.check(doc, summary)
        return c.supported / c.n_statements if c.n_statements else 0.0

    rng = random.Random(seed)
    pairs: list[PreferencePair] = []
    n_pol = int(round(policy_fraction * n)) if policy_samples is not None else 0
    while len(pairs) < n_pol:
        doc_rng = random.Random(rng.randrange(1 << 30))
        docs = [S.render(S.random_document(doc_rng)) for _ in range(256)]
        outs = policy_samples(docs, rng.randrange(1 << 30))  # type: ignore[misc]
        if len(outs) != 2 * len(docs):
            raise DataError(f"policy_samples gave {len(outs)} summaries for {len(docs)} documents (expected 2 each)")
        for i, d in enumerate(docs):
            a, b = outs[2 * i], outs[2 * i + 1]
            sa, sb = score(d, a), score(d, b)
            if sa != sb and len(pairs) < n_pol:
                pairs.append(PreferencePair(d, a, b) if sa > sb else PreferencePair(d, b, a))
    while len(pairs) < n:
        facts = S.random_document(rng)
        d = S.render(facts)
        a = S.render(S.summary_facts(rng, facts, corruption))
        b = S.render(S.summary_facts(rng, facts, corruption))
        sa, sb = score(d, a), score(d, b)
        if sa != sb:
            pairs.append(PreferencePair(d, a, b) if sa > sb else PreferencePair(d, b, a))
    rng.shuffle(pairs)
    return flip_labels(pairs, label_noise, seed=seed + 1) if label_noise else pairs
