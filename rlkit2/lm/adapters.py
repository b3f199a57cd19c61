"""LoRA adapters (through `peft`), gradient checkpointing, and checks of a model handed in by the caller.

With `model.lora.r > 0` the policy's causal LM is wrapped by `peft.get_peft_model`: the base weights are frozen and
only the low-rank adapter matrices train (they alone get gradients and optimiser state). The reference is then not
a second copy of the model: it is the same module run with the adapter disabled (`AdapterDisabled`, peft's
`disable_adapter()` context), which computes the base model exactly (LoRA's B starts at zero, so the policy starts
equal to it). `KVDecoder` refuses adapter models (`fast_decode.unsupported_reason`); the HF forward runs instead.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

from torch import nn

from rlkit2.core import ConfigError

_LOG = logging.getLogger("rlkit2.lm")
_LOGGED: set[str] = set()

# the attention projections of Gemma / Gemma 2 / Llama / Mistral / Qwen-style decoders
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclasses.dataclass
class LoraConfig:
    """`model.lora`: low-rank adapters on `target_modules` (module-name suffixes); `r=0` trains the full model."""

    r: int = 0  # rank; 0: off
    alpha: float = 16.0  # the adapter output is scaled by alpha / r
    dropout: float = 0.0  # on the adapter input; > 0 needs agent.disable_dropout=false (else it is zeroed)
    target_modules: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_TARGETS))


def log_once(message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        _LOG.info(message)


def is_peft_model(lm: Any) -> bool:
    return callable(getattr(lm, "disable_adapter", None)) and hasattr(lm, "peft_config")


def apply_lora(lm: nn.Module, cfg: LoraConfig) -> Any:
    """`lm` wrapped with trainable LoRA adapters (a `peft.PeftModelForCausalLM`; its base weights are frozen)."""
    try:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model
    except ImportError as e:  # pragma: no cover - peft is in the `lm` extra
        raise ConfigError("model.lora.r > 0 needs the `peft` package: pip install 'rlkit2[lm]' (or pip install peft)"
                          ) from e
    if is_peft_model(lm):
        raise ConfigError("model.lora.r > 0 but the model already carries peft adapters; pass the base model")
    names = [n for n, _ in lm.named_modules()]
    missing = [t for t in cfg.target_modules if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ConfigError(f"model.lora.target_modules: {missing} name no module of {type(lm).__name__} "
                          "(Gemma/Llama-style attention: q_proj, k_proj, v_proj, o_proj)")
    pc = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none",  # type: ignore[arg-type]
                        target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")  # (alpha / r in float)
    with warnings.catch_warnings():  # peft reads transformers' deprecated `is_gradient_checkpointing`
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(lm, pc)  # type: ignore[arg-type]


class AdapterDisabled(nn.Module):
    """The base model under a peft adapter model: `forward` runs it inside `disable_adapter()`.

    It owns no parameters (the peft model is not registered as a submodule), so it adds nothing to checkpoints,
    optimisers or `freeze`, and always sees the current base weights.
    """

    def __init__(self, peft_model: Any):
        super().__init__()
        self._inner = [peft_model]  # a list: not a registered submodule

    @property
    def peft_model(self) -> Any:
        return self._inner[0]

    @property
    def config(self) -> Any:
        return self.peft_model.config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.peft_model.disable_adapter():
            return self.peft_model(*args, **kwargs)


def enable_gradient_checkpointing(lm: Any) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of storing them (HF's
    `gradient_checkpointing_enable`, non-reentrant). HF checkpoints only in training mode: the learner runs its
    updates in train mode when this is on (dropout is off, so the function is the same)."""
    if not getattr(lm, "supports_gradient_checkpointing", False):
        raise ConfigError(f"model.gradient_checkpointing=true: {type(lm).__name__} does not support gradient "
                          "checkpointing")
    if callable(getattr(lm, "activation_checkpointing_enable", None)):  # transformers >= 5 (the old name warns)
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def check_model(model: Any, tokenizer: Any) -> None:
    """A model handed to `make(..., model=)`: a causal LM (a `PreTrainedModel` with a generation head) whose
    vocabulary holds every id of `tokenizer`."""
    try:
        from transformers import GenerationMixin, PreTrainedModel
    except ImportError as e:  # pragma: no cover - transformers is in the `lm` extra
        raise ConfigError("a language model needs `transformers`: pip install 'rlkit2[lm]'") from e
    if not isinstance(model, PreTrainedModel) or not isinstance(model, GenerationMixin) \
            or getattr(model, "get_output_embeddings", lambda: None)() is None:
        raise ConfigError(f"model={type(model).__name__}: expected a Hugging Face causal LM (an "
                          "AutoModelForCausalLM: a PreTrainedModel with an LM head), e.g. "
                          "AutoModelForCausalLM.from_pretrained(...)")
    if is_peft_model(model):
        raise ConfigError("model= carries peft adapters; pass the base model and set model.lora instead")
    if tokenizer is None:
        raise ConfigError("model= needs its tokenizer: make(..., model=m, tokenizer=t)")
    vocab = int(model.get_output_embeddings().weight.shape[0])
    n_tok = len(tokenizer)
    if n_tok > vocab:
        raise ConfigError(f"the tokenizer has {n_tok} tokens but the model's vocabulary has {vocab}: they do not "
                          "belong together (pass the model's own tokenizer, or resize its embeddings)")
    for name in ("pad_token_id", "eos_token_id"):
        tid = getattr(tokenizer, name, None)
        if tid is None:
            raise ConfigError(f"the tokenizer has no {name.removesuffix('_id')} token; set one "
                              f"(e.g. tokenizer.pad_token = tokenizer.eos_token)")
