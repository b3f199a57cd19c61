"""Supervised fine-tuning of a causal LM on (prompt, response) pairs: the RL starting point."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlkit2.learners import optimizer_step
from rlkit2.lm.generation import LMActor, response_logprobs


def sft_loss(model: Any, actor: LMActor, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
    """Mean token NLL of `response + EOS` given the prompt (the prompt tokens carry no loss)."""
    q, qm = actor.encode_prompts(prompts)
    tok = actor.tokenizer
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        enc = tok([r + " " + tok.eos_token for r in responses], padding=True, return_tensors="pt",
                  add_special_tokens=False)
    finally:
        tok.padding_side = side
    r, rm = enc.input_ids.to(q.device), enc.attention_mask.to(q.device).float()
    lp = response_logprobs(model, q, qm, r, rm, suppress_ids=actor.suppress_ids)["logprobs"]
    return -(lp.sum() / rm.sum())


def sft_train(model: Any, tokenizer: Any, examples: Sequence[dict[str, str]], *, steps: int, batch_size: int = 32,
              lr: float = 1e-3, seed: int = 0, format_prompt: Callable[[str], str] = lambda d: d,
              log_every: int = 100, callback: Callable[[int, float], None] | None = None) -> list[float]:
    """AdamW with cosine decay on rows {document, summary}; returns the loss curve."""
    actor = LMActor(model, tokenizer)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    curve, acc = [], torch.zeros(())
    for step in range(steps):
        rows = [examples[i] for i in torch.randint(0, len(examples), (batch_size,), generator=g).tolist()]
        loss = sft_loss(model, actor, [format_prompt(r["document"]) for r in rows], [r["summary"] for r in rows])
        optimizer_step(opt, loss, model.parameters(), 1.0)
        sched.step()
        acc = acc + loss.detach()
        if (step + 1) % log_every == 0:
            curve.append(acc.item() / log_every)
            acc = torch.zeros(())
            if callback:
                callback(step + 1, curve[-1])
    model.eval()
    return curve
