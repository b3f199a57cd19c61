"""A compact forward of Gemma / Gemma 2 / Llama causal LMs against a preallocated KV tensor.

Why: for the small policies RLHF runs on a CPU, a decode step through transformers' modules is mostly
Python overhead (module calls, cache objects, mask building), not arithmetic. `KVDecoder` reads the HF
module's own weights (no copies, so it always sees the current policy) and runs the same computation as
the HF eager forward: RMSNorm (Gemma's (1 + w) scaling), q/k/v projections, RoPE (the model's own rotary
table), GQA attention against keys/values written in place into one [layers, 2, B, kv_heads, T_max, head_dim]
tensor, Gemma 2's sliding-window layers, attention-logit and final-logit soft-capping, its extra pre/post
feed-forward norms, the sqrt(hidden) embedding normaliser, the MLP and the LM head. It is differentiable (the
learner's policy forward uses it too) and tested equal to the HF forward, logits and gradients
(tests/lm/test_fast_decode.py). `unsupported_reason` says when it does not apply (other architectures,
non-float32 weights, adapters or hooks, dynamic RoPE, gradient checkpointing); callers then use the HF model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

FAST_MODEL_TYPES = ("gemma", "gemma2", "llama")
_STATIC_ROPE = ("default", "linear", "llama3")


def unsupported_reason(lm: Any) -> str | None:
    """None when `KVDecoder` computes exactly what `lm`'s eager forward does; otherwise why not."""
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:  # 4.x scales Gemma's embeddings outside embed_tokens
        return f"transformers {transformers.__version__}: KVDecoder is tested equal only under transformers 5"
    if hasattr(lm, "peft_config") or hasattr(lm, "peft_model"):
        return "a peft adapter model (LoRA): the HF forward runs the adapters"
    cfg = getattr(lm, "config", None)
    model_type = getattr(cfg, "model_type", None)
    if model_type not in FAST_MODEL_TYPES:
        return f"model_type {model_type!r} is not one of {FAST_MODEL_TYPES}"
    body = getattr(lm, "model", None)
    if body is None or not hasattr(body, "layers") or not isinstance(getattr(lm, "lm_head", None), nn.Linear):
        return "not a plain *ForCausalLM (model.layers / lm_head missing)"
    if next(lm.parameters()).dtype != torch.float32:
        return "weights are not float32"
    rope = (getattr(cfg, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope not in _STATIC_ROPE:
        return f"rope_type {rope!r} (position-dependent RoPE tables are not reproduced)"
    if getattr(cfg, "attention_dropout", 0.0) and lm.training:
        return "attention dropout in training mode"
    # transformers 5.x: `is_activation_checkpointing` (the old name warns); 4.x: `is_gradient_checkpointing`
    ckpt_attr = "is_activation_checkpointing" if hasattr(type(lm), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"
    if getattr(lm, ckpt_attr, False):
        return "gradient checkpointing is on"
    if torch.nn.modules.module._global_forward_hooks or torch.nn.modules.module._global_forward_pre_hooks:
        return "global module hooks are registered"
    for name, m in lm.named_modules():
        if m._forward_pre_hooks or any(not _is_output_recorder(h) for h in m._forward_hooks.values()):
            return f"module {name!r} has forward hooks"
        if name.endswith(("_proj", "lm_head")) and type(m) is not nn.Linear:
            return f"module {name!r} is a {type(m).__name__}, not nn.Linear (adapter / quantised?)"
    return None


def _is_output_recorder(hook: Any) -> bool:
    # transformers installs these on first `output_hidden_states=True`; they only act inside that call
    return getattr(hook, "__qualname__", "").startswith("install_output_capuring_hook")


class KVDecoder:
    """Prefill and single-token steps of one batch. Rows are left-padded; all rows share the cache index.

    `prefill(ids, mask, pos)` runs the prompt ([B, L]); `step(tok, mask, pos)` one token per row, where `mask`
    is the [B, S] attention mask over everything cached so far plus this token. Both return
    (logits [B, L', V], last hidden state [B, L', H]) for the new positions from `head_from` on (the LM head
    runs only there); `forward` is the cache-free teacher-forced version (the reference log-probs).
    """

    def __init__(self, lm: Any, batch: int, max_len: int, cache: bool = True):
        cfg = lm.config
        self.lm, self.cfg = lm, cfg
        self.gemma = cfg.model_type in ("gemma", "gemma2")
        self.gemma2 = cfg.model_type == "gemma2"
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.groups = self.heads // self.kv_heads
        self.scaling = (cfg.query_pre_attn_scalar if self.gemma2 else self.head_dim) ** -0.5
        self.attn_cap = getattr(cfg, "attn_logit_softcapping", None) if self.gemma2 else None
        self.final_cap = getattr(cfg, "final_logit_softcapping", None) if self.gemma2 else None
        types = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
        window = getattr(cfg, "sliding_window", None) if self.gemma2 else None
        self.windows = [window if t == "sliding_attention" else None for t in types]
        body = lm.model
        self.layers = list(body.layers)[: cfg.num_hidden_layers]
        p = next(lm.parameters())
        self.neg = torch.finfo(p.dtype).min
        # Gemma's RMSNorm scales by (1 + w); precomputed once per batch (the weights do not change mid-batch)
        self.norm_w = {id(m): self._norm_weight(m) for m in body.modules() if type(m).__name__.endswith("RMSNorm")}
        self.max_len = max_len
        self.kv = (torch.empty(len(self.layers), 2, batch, self.kv_heads, max_len, self.head_dim, dtype=p.dtype,
                               device=p.device) if cache else None)
        self.length = 0  # cache slots filled
        # the model's own rotary table, evaluated once for every position this batch can reach
        positions = torch.arange(max_len + 1, device=p.device)[None]
        cos, sin = body.rotary_emb(p.new_zeros(1), positions)
        half = self.head_dim // 2
        self.cos, self.sin = cos[0], torch.cat((-sin[0, :, :half], sin[0, :, half:]), -1)

    def _norm_weight(self, m: Any) -> tuple[torch.Tensor, float]:
        w = m.weight  # not detached: the forward is differentiable (the learner's policy forward)
        return (1.0 + w.float() if self.gemma else w), float(m.eps if hasattr(m, "eps") else m.variance_epsilon)

    def _norm(self, m: Any, x: torch.Tensor) -> torch.Tensor:
        w, eps = self.norm_w[id(m)]
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # HF's x * cos + rotate_half(x) * sin, with rotate_half(x) * sin == roll(x) * [-sin_1, sin_2] exactly
        return x * cos + x.roll(x.shape[-1] // 2, -1) * sin

    def _masks(self, key_mask: torch.Tensor, L: int) -> dict[int | None, torch.Tensor]:
        """Additive masks [B, 1, 1, L, S] per window (None = global): key allowed, causal, inside the window."""
        S = key_mask.shape[1]
        q_idx = torch.arange(S - L, S, device=key_mask.device)[:, None]
        k_idx = torch.arange(S, device=key_mask.device)[None]
        allowed = key_mask.bool()[:, None, :] & (k_idx <= q_idx)  # [B, L, S]
        out = {}
        for w in set(self.windows):
            ok = allowed if w is None else allowed & (k_idx > q_idx - w)
            out[w] = torch.where(ok, 0.0, self.neg).to(self.cos.dtype)[:, None, None]
        return out

    def _run(self, ids: torch.Tensor, key_mask: torch.Tensor, pos: torch.Tensor, start: int | None,
             head_from: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        B, L = ids.shape
        masks = self._masks(key_mask, L)
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # [B, 1, L, D]
        x = self.lm.model.embed_tokens(ids)
        D, KV, G = self.head_dim, self.kv_heads, self.groups
        inplace = not torch.is_grad_enabled()
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            h = self._norm(layer.input_layernorm, x)
            q = F.linear(h, a.q_proj.weight, a.q_proj.bias).view(B, L, self.heads, D).transpose(1, 2)
            k = F.linear(h, a.k_proj.weight, a.k_proj.bias).view(B, L, KV, D).transpose(1, 2)
            v = F.linear(h, a.v_proj.weight, a.v_proj.bias).view(B, L, KV, D).transpose(1, 2)
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            if start is not None and self.kv is not None:
                self.kv[i, 0, :, :, start : start + L] = k
                self.kv[i, 1, :, :, start : start + L] = v
                k, v = self.kv[i, 0, :, :, : start + L], self.kv[i, 1, :, :, : start + L]
            # GQA without repeating K/V: the G query heads of a KV head share one matmul
            s = torch.matmul(q.reshape(B, KV, G * L, D), k.transpose(-1, -2))
            if inplace:  # without autograd the [B, heads, L, S] scores are updated in place (same arithmetic)
                s.mul_(self.scaling)
                if self.attn_cap is not None:
                    s.div_(self.attn_cap).tanh_().mul_(self.attn_cap)
                s = s.view(B, KV, G, L, -1).add_(masks[self.windows[i]])
            else:
                s = s * self.scaling
                if self.attn_cap is not None:
                    s = torch.tanh(s / self.attn_cap) * self.attn_cap
                s = s.view(B, KV, G, L, -1) + masks[self.windows[i]]
            p = torch.softmax(s, -1).view(B, KV, G * L, -1)
            o = torch.matmul(p, v).view(B, self.heads, L, D).transpose(1, 2).reshape(B, L, self.heads * D)
            o = F.linear(o, a.o_proj.weight, a.o_proj.bias)
            if self.gemma2:
                x = x + self._norm(layer.post_attention_layernorm, o)
                h = self._norm(layer.pre_feedforward_layernorm, x)
            else:
                x = x + o
                h = self._norm(layer.post_attention_layernorm, x)
            m = layer.mlp
            g = m.act_fn(F.linear(h, m.gate_proj.weight, m.gate_proj.bias)) * F.linear(h, m.up_proj.weight,
                                                                                       m.up_proj.bias)
            m_out = F.linear(g, m.down_proj.weight, m.down_proj.bias)
            x = x + (self._norm(layer.post_feedforward_layernorm, m_out) if self.gemma2 else m_out)
        hidden = self._norm(self.lm.model.norm, x[:, head_from:])  # the LM head only where logits are wanted
        logits = F.linear(hidden, self.lm.lm_head.weight, self.lm.lm_head.bias)
        if self.final_cap is not None:
            logits = torch.tanh(logits / self.final_cap) * self.final_cap
        return logits, hidden

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, head_from: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.shape[1] > self.max_len:
            raise ValueError(f"KVDecoder: {ids.shape[1]} prompt tokens exceed the cache's {self.max_len}")
        out = self._run(ids, mask, pos, 0, head_from)
        self.length = ids.shape[1]
        return out

    def step(self, tok: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.length >= self.max_len:
            raise ValueError(f"KVDecoder: the cache holds {self.max_len} tokens; no room for another")
        out = self._run(tok[:, None], mask, pos[:, None], self.length)
        self.length += 1
        return out

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, head_from: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced forward over [B, L] without a cache."""
        return self._run(ids, mask, pos, None, head_from)
