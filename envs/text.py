"""The text-generation environment: a prompt (a document to summarise) in, a response out.

One episode is one response: `reset()` draws a document and returns the formatted prompt;
`step(response)` scores it with the pluggable reward function and ends the episode. The exact
metric of a task (for `dataset=synthetic`: the factual-consistency checker) is reported in
`info` (`info["success"]` = consistent), so `rlkit2.core.evaluate` gives `eval/success_rate`.
Batched use (rollouts) goes through `sample_documents`, `format_prompt`, `score` and `metrics`.

With `chat=true` the prompt is a user message that the LM actors render with the tokenizer's chat template
(see `rlkit2.lm.generation.encode_prompts`); the env itself stays tokenizer-free.

Documents come from `dataset`: `synthetic` (the checkable generator of rlkit2.lm.synthetic),
a local `.jsonl` file (one object a line, text under `field`), or a HF `datasets` name/dir.
"""

from __future__ import annotations

import dataclasses
import random
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlkit2.config import store
from rlkit2.core import ConfigError, DataError
from rlkit2.data.jsonl import iter_jsonl
from rlkit2.registry import register_env_kind


@dataclasses.dataclass
class TextEnvConfig:
    kind: str = "text"
    id: str = "synthetic_summaries"
    dataset: str = "synthetic"  # "synthetic" | path/to/file.jsonl | HF datasets name or dir
    split: str = "train"
    eval_split: str = ""  # HF/JSONL: split or file for evaluation prompts ("" = same source, other seed)
    field: str = "document"
    template: str = "<doc> {document} <sum>"
    shuffle: bool = True
    metric: str = "auto"  # "auto": the synthetic checker when dataset=synthetic; "none"; "synthetic"
    reward: Any = None  # a reward config (conf/reward/*.yaml, kind=...); see rlkit2.rewards
    # the formatted prompt is a chat message: the LM actors render it as one user turn with the tokenizer's chat
    # template (`apply_chat_template(..., add_generation_prompt=True)`, which writes its own <bos>) and encode it
    # without adding special tokens again; a tokenizer without `chat_template` is a ConfigError. False: the prompt
    # is encoded as is, with the tokenizer's default special tokens (e.g. Gemma's <bos>).
    chat: bool = False


_CHARSET = string.printable


class DocumentSource:
    """Cycles through a list of documents (reshuffled each pass) or an endless generator."""

    def __init__(self, dataset: str, split: str, field: str, seed: int, shuffle: bool = True):
        self.seed, self.drawn = seed, 0
        self.rng = random.Random(seed)
        self.shuffle = shuffle
        self._stream = None
        self.docs: list[str] = []
        if dataset == "synthetic":
            from rlkit2.lm.synthetic import documents

            self._stream = documents(seed)
        elif dataset.endswith(".jsonl") or Path(dataset).is_file():
            self.docs = read_jsonl_field(dataset, field)
        else:
            self.docs = read_hf_field(dataset, split, field)
        self._order: list[int] = []

    def next(self) -> str:
        self.drawn += 1
        if self._stream is not None:
            return next(self._stream)
        if not self._order:
            self._order = list(range(len(self.docs)))
            if self.shuffle:
                self.rng.shuffle(self._order)
        return self.docs[self._order.pop()]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "order": list(self._order), "drawn": self.drawn, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume the stream where it was (a synthetic stream is replayed from its seed)."""
        if self._stream is not None:
            from rlkit2.lm.synthetic import documents

            self._stream = documents(state["seed"])
            for _ in range(int(state["drawn"])):
                next(self._stream)
        self.rng.setstate(state["rng"])
        self._order, self.drawn = list(state["order"]), int(state["drawn"])


def read_jsonl_field(path: str, field: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"prompt file {p} does not exist")
    docs = []
    for i, row in iter_jsonl(p):
        if not isinstance(row, dict) or field not in row or not isinstance(row[field], str):
            raise DataError(f"{p}:{i}: expected an object with a string field '{field}' (env.field)")
        docs.append(row[field])
    if not docs:
        raise DataError(f"prompt file {p} has no rows")
    return docs


def read_hf_field(name: str, split: str, field: str) -> list[str]:
    import datasets

    try:
        ds = datasets.load_from_disk(name) if Path(name).is_dir() else datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - datasets raises many types (offline, missing, ...)
        raise DataError(f"could not load dataset '{name}' split '{split}': {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"dataset '{name}' has no split '{split}' (have {list(ds)})")
        ds = ds[split]
    if field not in ds.column_names:
        raise DataError(f"dataset '{name}' has no column '{field}' (env.field); columns: {ds.column_names}")
    return list(ds[field])


class TextGenerationEnv(gym.Env):
    """Single-step episodes: observation = prompt text, action = response text."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, config: TextEnvConfig, reward_fn: Callable[..., torch.Tensor] | None = None, seed: int = 0,
                 evaluation: bool = False):
        self.config = config
        if "{document}" not in config.template:
            raise ConfigError(f"env.template='{config.template}' must contain '{{document}}'")
        if not isinstance(config.chat, bool):
            raise ConfigError(f"env.chat={config.chat!r} must be true or false")
        split = config.eval_split or config.split if evaluation else config.split
        src_seed = seed + (1_000_003 if evaluation else 0)  # disjoint synthetic stream for evaluation
        self.source = DocumentSource(config.dataset, split, config.field, src_seed, config.shuffle)
        if reward_fn is None and config.reward is not None:
            from rlkit2.rewards import make_reward

            reward_fn = make_reward(config.reward)
        self.reward_fn = reward_fn
        metric = config.metric
        if metric == "auto":
            metric = "synthetic" if config.dataset == "synthetic" else "none"
        if metric not in ("synthetic", "none"):
            raise ConfigError(f"env.metric='{metric}'; expected auto, synthetic or none")
        self.metric = metric
        self.observation_space = gym.spaces.Text(max_length=1 << 16, charset=_CHARSET)
        self.action_space = gym.spaces.Text(max_length=1 << 16, charset=_CHARSET)
        self._document: str | None = None

    # ------------------------------------------------------------------ batched API
    def format_prompt(self, document: str) -> str:
        return self.config.template.format(document=document)

    def sample_documents(self, n: int) -> list[str]:
        return [self.source.next() for _ in range(n)]

    def score(self, documents: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        if self.reward_fn is None:
            raise ConfigError("the text env has no reward function: set env.reward (e.g. `reward=entailment`)")
        return self.reward_fn(documents, responses).float()

    def metrics(self, documents: Sequence[str], responses: Sequence[str]) -> dict[str, float]:
        """Task metrics beside the learned reward (the exact checker for the synthetic task)."""
        out = {"response_words": float(np.mean([len(r.split()) for r in responses])) if responses else 0.0}
        if self.metric == "synthetic":
            from rlkit2.lm.synthetic import consistency_metrics

            out.update(consistency_metrics(list(documents), list(responses)))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"source": self.source.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state["source"])

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:  # a seeded reset draws a reproducible document
            self.source.rng.seed(seed)
            if self.source._stream is not None:
                from rlkit2.lm.synthetic import documents

                self.source._stream = documents(seed + 7_919)
                self.source.seed, self.source.drawn = seed + 7_919, 0
            self.source._order = []
        self._document = self.source.next()
        return self.format_prompt(self._document), {"document": self._document}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._document is None:
            raise RuntimeError("call reset() before step()")
        doc = self._document
        reward = float(self.score([doc], [action])[0]) if self.reward_fn is not None else 0.0
        info: dict[str, Any] = {"document": doc, **self.metrics([doc], [action])}
        if self.metric == "synthetic":
            info["success"] = bool(info["true_consistency"] >= 1.0)
        self._document = None
        return self.format_prompt(doc), reward, True, False, info


def make_text_env(env_cfg: Any, seed: int | None = None, reward_fn: Any = None, evaluation: bool = False
                  ) -> TextGenerationEnv:
    if not isinstance(env_cfg, TextEnvConfig):
        from omegaconf import DictConfig, OmegaConf

        raw = OmegaConf.to_container(env_cfg, resolve=True) if isinstance(env_cfg, DictConfig) else dict(env_cfg)
        reward = raw.pop("reward", None)
        known = {f.name for f in dataclasses.fields(TextEnvConfig)}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"unknown text env option(s) {sorted(unknown)}; valid: {sorted(known)}")
        env_cfg = TextEnvConfig(**raw, reward=reward)
    return TextGenerationEnv(env_cfg, reward_fn=reward_fn, seed=seed or 0, evaluation=evaluation)


store("text_schema", TextEnvConfig, group="env")
def _make_text_env(cfg: Any, seed: int | None = None, render_mode: str | None = None) -> Any:
    if render_mode is not None:
        raise ConfigError(f"the text env has no frames to render (render_mode={render_mode!r}; trainer.video is for "
                          "control and robot envs)")
    return make_text_env(cfg, seed)


register_env_kind("text", _make_text_env)
