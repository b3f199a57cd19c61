"""Batched generation and log-probabilities for LM policies.

`LMActor` is the text family's `rlkit2.core.Actor`: `act(prompt)` returns a response string
(or a list for a list of prompts); `rollout(prompts)` returns the token-level `Rollout` the
learner needs. Generation is one batched `generate` with the KV cache (left-padded prompts);
log-probabilities and values are then recomputed in one teacher-forced forward over the whole
batch (`response_logprobs`), using the same position ids as generation so both agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from rlkit2.core import BaseActor
from rlkit2.lm.models import lm_forward


@dataclasses.dataclass
class GenerationConfig:
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    top_p: float = 1.0
    do_sample: bool = True
    max_prompt_tokens: int = 256  # longer prompts keep their last tokens (left truncation)


@dataclasses.dataclass
class Rollout:
    """A generated batch. Responses are right-padded; `response_mask` covers tokens up to and including EOS."""

    query_ids: torch.Tensor  # [B, Lq] left-padded
    query_mask: torch.Tensor  # [B, Lq]
    response_ids: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T] float
    texts: list[str]


def response_mask_from_ids(response_ids: torch.Tensor, eos_id: int, pad_id: int) -> torch.Tensor:
    """1 up to and including the first EOS (the stop is an action the policy is credited for)."""
    is_eos = response_ids == eos_id
    after_eos = (is_eos.long().cumsum(1) - is_eos.long()) > 0
    mask = ~after_eos
    if pad_id != eos_id:
        mask &= response_ids != pad_id
    return mask.float()


def response_logprobs(
    model: Any,
    query_ids: torch.Tensor,
    query_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
    with_values: bool = False,
    return_entropy: bool = False,
) -> dict[str, torch.Tensor]:
    """Token log-probs [B, T] of `response_ids` (and values [B, T] of the states before each token).

    `model` is a PolicyWithValue (values) or a bare causal LM. Logits are divided by the sampling
    temperature, so the log-probs are those of the distribution that was sampled.
    """
    ids = torch.cat([query_ids, response_ids], 1)
    mask = torch.cat([query_mask.to(response_mask.dtype), response_mask], 1).long()
    Lq, T = query_ids.shape[1], response_ids.shape[1]
    if hasattr(model, "value_head"):
        logits, values = model(ids, mask)
    else:
        logits, values = lm_forward(model, ids, mask).logits, None
    logits = logits[:, Lq - 1 : Lq - 1 + T].float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, -1)
    out = {"logprobs": logp_all.gather(-1, response_ids[..., None]).squeeze(-1) * response_mask}
    if with_values and values is not None:
        out["values"] = values[:, Lq - 1 : Lq - 1 + T].float() * response_mask
    if return_entropy:
        out["entropy"] = -(logp_all.exp() * logp_all).sum(-1)
    return out


class LMActor(BaseActor):
    """A batched text generator behind the Actor interface (shares its modules with the learner)."""

    def __init__(self, model: Any, tokenizer: Any, config: GenerationConfig | None = None, greedy: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.config = config or GenerationConfig()
        self.greedy = greedy

    @property
    def lm(self) -> Any:
        return getattr(self.model, "lm", self.model)

    def encode_prompts(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer
        side, tside = tok.padding_side, getattr(tok, "truncation_side", "right")
        tok.padding_side, tok.truncation_side = "left", "left"
        try:
            enc = tok(list(prompts), padding=True, truncation=True, max_length=self.config.max_prompt_tokens,
                      return_tensors="pt", add_special_tokens=False)
        finally:
            tok.padding_side, tok.truncation_side = side, tside
        device = next(self.lm.parameters()).device
        return enc.input_ids.to(device), enc.attention_mask.to(device)

    @torch.no_grad()
    def rollout(self, prompts: Sequence[str], num_samples: int = 1) -> Rollout:
        """Generate `num_samples` responses per prompt (the samples of a prompt are contiguous)."""
        q, qm = self.encode_prompts(prompts)
        if num_samples > 1:
            q, qm = q.repeat_interleave(num_samples, 0), qm.repeat_interleave(num_samples, 0)
        c = self.config
        sample = c.do_sample and not self.greedy
        kw: dict[str, Any] = {"do_sample": sample}
        if sample:
            kw.update(temperature=c.temperature, top_k=c.top_k or None, top_p=c.top_p)
        lm = self.lm
        was_training = lm.training
        lm.eval()
        out = lm.generate(input_ids=q, attention_mask=qm, max_new_tokens=c.max_new_tokens,
                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
                          use_cache=True, **kw)
        lm.train(was_training)
        resp = out[:, q.shape[1] :]
        if resp.shape[1] == 0:  # nothing generated: one EOS so every row has a token
            resp = torch.full((q.shape[0], 1), self.tokenizer.eos_token_id, device=q.device)
        rmask = response_mask_from_ids(resp, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id)
        resp = torch.where(rmask.bool(), resp, torch.full_like(resp, self.tokenizer.pad_token_id))
        texts = self.tokenizer.batch_decode(resp, skip_special_tokens=True)
        return Rollout(q, qm, resp, rmask, [t.strip() for t in texts])

    def act(self, observation: str | Sequence[str]) -> str | list[str]:
        if isinstance(observation, str):
            return self.rollout([observation]).texts[0]
        return self.rollout(list(observation)).texts
