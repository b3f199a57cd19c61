"""Language models for RLHF: HF causal LMs by name/path, tiny local Gemma-family configs,
an offline word-level tokenizer, and the policy-with-value-head module.

Any `AutoModelForCausalLM` loads by `name_or_path` (e.g. `google/gemma-2-2b` where the weights
are present). With `name_or_path=""` a tiny randomly initialised Gemma / Gemma 2 /
RecurrentGemma is built locally (tests, the embedded synthetic task). Gemma 2 always runs with
`attn_implementation="eager"`: SDPA would skip its attention-logit soft-capping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from rlkit2.core import ConfigError
from rlkit2.lm.adapters import LoraConfig

PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"  # ids 0, 1, 2, 3 = Gemma's pad/eos/bos layout
ARCHS = ("gemma", "gemma2", "recurrent_gemma")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


@dataclasses.dataclass
class LMConfig:
    """Which causal LM the policy (and its frozen reference) is.

    `name_or_path` empty: a tiny random model of `arch` is built from the fields below.
    """

    name_or_path: str = ""
    arch: str = "gemma2"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 512
    sliding_window: int = 32  # Gemma 2 local layers; small so the interleaving matters on tiny inputs
    dtype: str = "float32"
    dropout: float = 0.0  # the tiny model's attention dropout (ppo_lm turns dropout off: agent.disable_dropout)
    device: str = "cpu"
    tokenizer: str = ""  # path/name of a tokenizer; "" = the task's (word-level) tokenizer or the model's own
    # LoRA adapters (peft) on the policy; r=0: full fine-tuning. Under LoRA the reference is the same model with
    # its adapter disabled (no second copy) and only the adapter weights train (rlkit2.lm.adapters)
    lora: LoraConfig = dataclasses.field(default_factory=LoraConfig)
    # recompute the decoder layers' activations in the backward pass (HF, non-reentrant): less memory, ~1/3 more
    # compute; policy (and a separate value model's) updates then run in train mode (dropout stays off)
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):  # LMConfig(lora={"r": 8}) as to_config would build it
            self.lora = LoraConfig(**self.lora)


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"model.dtype='{name}' is not supported; expected one of {sorted(DTYPES)}")
    return DTYPES[name]


# --------------------------------------------------------------------------- tokenizer


def build_word_tokenizer(words: Iterable[str], model_max_length: int = 512, add_bos: bool = False) -> Any:
    """A `PreTrainedTokenizerFast` over a fixed word vocabulary (whitespace split), built offline.

    ids 0..3 are <pad>, <eos>, <bos>, <unk>; padding is on the left (batched generation). By default no special
    token is added on encoding; `add_bos=True` adds a post-processor that prepends <bos> (as Gemma's tokenizer does).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {PAD: 0, EOS: 1, BOS: 2, UNK: 3}
    for w in words:
        if w not in vocab:
            vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A $B:1",
                                                           special_tokens=[(BOS, vocab[BOS])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=BOS,
                                   unk_token=UNK, model_max_length=model_max_length)
    fast.padding_side = "left"
    return fast


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name_or_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


# --------------------------------------------------------------------------- models


def tiny_config(cfg: LMConfig, vocab_size: int, pad_id: int = 0, eos_id: int = 1, bos_id: int = 2) -> Any:
    """A tiny HF config of `cfg.arch` (random weights; for tests and the synthetic task)."""
    from transformers import Gemma2Config, GemmaConfig, RecurrentGemmaConfig

    head_dim = cfg.hidden_size // cfg.num_heads
    common: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings, pad_token_id=pad_id, eos_token_id=eos_id,
        bos_token_id=bos_id, tie_word_embeddings=True, attention_dropout=cfg.dropout)
    if cfg.arch == "gemma":
        return GemmaConfig(**common, num_key_value_heads=cfg.num_kv_heads, head_dim=head_dim)
    if cfg.arch == "gemma2":
        # Interleaved local (sliding) / global attention, GQA, attention and final logit soft-capping.
        layer_types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(cfg.num_layers)]
        return Gemma2Config(**common, num_key_value_heads=cfg.num_kv_heads, head_dim=head_dim,
                            query_pre_attn_scalar=head_dim, sliding_window=cfg.sliding_window,
                            layer_types=layer_types, attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    if cfg.arch == "recurrent_gemma":
        if cfg.num_layers < 3:
            raise ConfigError(f"model.num_layers={cfg.num_layers}: a RecurrentGemma needs >= 3 layers "
                              "(its block pattern is recurrent, recurrent, attention)")
        common.pop("max_position_embeddings")
        return RecurrentGemmaConfig(**common, num_key_value_heads=cfg.num_kv_heads, lru_width=cfg.hidden_size,
                                    attention_window_size=cfg.sliding_window * 4)
    raise ConfigError(f"model.arch='{cfg.arch}' is unknown; expected one of {ARCHS} (or set model.name_or_path)")


def build_causal_lm(cfg: LMConfig, tokenizer: Any | None = None, seed: int | None = None) -> Any:
    """The policy's causal LM: pretrained by `name_or_path`, or tiny and random of `arch`."""
    from transformers import AutoModelForCausalLM

    dtype = torch_dtype(cfg.dtype)
    if cfg.name_or_path:
        kw: dict[str, Any] = {"dtype": dtype}
        if "gemma-2" in cfg.name_or_path.lower() or "gemma2" in cfg.name_or_path.lower():
            kw["attn_implementation"] = "eager"
        model = AutoModelForCausalLM.from_pretrained(cfg.name_or_path, **kw)
    else:
        if tokenizer is None:
            raise ConfigError("a tiny model (model.name_or_path='') needs a tokenizer to size its vocabulary")
        if seed is not None:
            torch.manual_seed(seed)
        hf_cfg = tiny_config(cfg, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id,
                             tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id)
        hf_cfg._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(hf_cfg, attn_implementation="eager", dtype=dtype)
    return model.to(cfg.device)  # type: ignore[arg-type]  # transformers' stubs type `to` oddly


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding (what HF generate uses), so forward and generate agree."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


class PolicyWithValue(nn.Module):
    """A causal LM and a scalar value head on its last hidden state (shared trunk, docs/algorithms/ppo_lm.md).

    `forward(input_ids, attention_mask)` returns (logits [B, L, V], values [B, L]).
    """

    def __init__(self, lm: Any, value_head: bool = True):
        super().__init__()
        self.lm = lm
        hidden = lm.config.hidden_size
        self.value_head = nn.Linear(hidden, 1) if value_head else None
        if self.value_head is not None:
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
            self.value_head.to(device=next(lm.parameters()).device, dtype=next(lm.parameters()).dtype)

    @property
    def config(self) -> Any:
        return self.lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int = 0,
                kv_decoder: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`logits_to_keep` > 0: logits and values of the last that many positions only. `kv_decoder`: through
        `rlkit2.lm.fast_decode.KVDecoder` where it supports the LM, else through the HF modules."""
        from rlkit2.lm.fast_decode import KVDecoder, unsupported_reason

        keep = logits_to_keep or input_ids.shape[1]
        hidden: torch.Tensor | None
        if kv_decoder and unsupported_reason(self.lm) is None:
            # the compact forward (same computation as the HF modules, tested equal, gradients included)
            dec = KVDecoder(self.lm, input_ids.shape[0], input_ids.shape[1], cache=False)
            logits, hidden = dec.forward(input_ids, attention_mask, position_ids_from_mask(attention_mask),
                                         head_from=input_ids.shape[1] - keep)
        else:
            out = lm_forward(self.lm, input_ids, attention_mask, hidden=self.value_head is not None,
                             logits_to_keep=keep)
            logits, hidden = out.logits, (out.hidden_states[-1][:, -keep:] if self.value_head is not None else None)
        values = None
        if self.value_head is not None:
            values = self.value_head(hidden).squeeze(-1)
        return logits, values


def _last_hidden_selector() -> list[int] | bool:
    """`[-1]` (record only the last layer's hidden state, the value head's input) where transformers takes a list of
    layers for `output_hidden_states` (newer 5.x releases); older ones return no hidden states for a list (found
    on transformers 5.17 on a GPU machine), so there every layer's is recorded (True)."""
    try:
        from transformers.utils.output_capturing import selected_hidden_states  # noqa: F401
    except ImportError:
        return True
    return [-1]


LAST_HIDDEN = _last_hidden_selector()


def lm_forward(lm: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, hidden: bool = False,
               logits_to_keep: int = 0) -> Any:
    # hidden: the last layer's hidden state (the value head's input) is recorded, alone where transformers can
    return lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids_from_mask(attention_mask),
              output_hidden_states=LAST_HIDDEN if hidden else False, use_cache=False, logits_to_keep=logits_to_keep)


_DROPOUT_ATTRS = ("attention_dropout", "dropout", "attn_pdrop", "resid_pdrop", "embd_pdrop", "hidden_dropout",
                  "hidden_dropout_prob", "attention_probs_dropout_prob", "summary_first_dropout")


def disable_dropout(model: nn.Module) -> nn.Module:
    """Dropout off for good: every `nn.Dropout` gets p=0 and every float dropout rate an HF module or config reads
    at call time (`attention_dropout` of the eager attention, GPT-2's `*_pdrop`) is set to 0, so the model computes
    the same function in train and eval mode (PPO's first on-policy ratio is exactly 1)."""
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.p = 0.0
        for attr in _DROPOUT_ATTRS:
            if isinstance(getattr(m, attr, None), float) and not isinstance(getattr(m, attr), bool):
                setattr(m, attr, 0.0)
        cfg = getattr(m, "config", None)
        for attr in _DROPOUT_ATTRS:
            if cfg is not None and isinstance(getattr(cfg, attr, None), float):
                setattr(cfg, attr, 0.0)
    return model


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
