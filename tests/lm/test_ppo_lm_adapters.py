"""LoRA adapters (peft) with the adapter-disabled model as the reference, gradient checkpointing, an already-built
model handed to rlkit2.make, and dynamic loss scaling for fp16 (tiny models, CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

import rlkit2
from rlkit2.agents.ppo_lm.builder import make_agent
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.agents.ppo_lm.learner import uses_checkpointing
from rlkit2.core import ConfigError
from rlkit2.lm import adapters
from rlkit2.lm.fast_decode import unsupported_reason
from rlkit2.lm.generation import GenerationConfig, response_logprobs
from rlkit2.lm.models import LMConfig, build_causal_lm, tiny_config

pytest.importorskip("peft")

SMALL = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
LORA = {"r": 4, "alpha": 8.0}


def text_env(seed=0):
    return make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}), seed)


def run_config(model=None, **kw):
    base = dict(model={**SMALL, **(model or {})}, generation={"max_new_tokens": 5}, prompts_per_step=8,
                minibatch_size=8, ppo_epochs=1, kl_coef=0.01)
    base.update(kw)
    return base


def learner(seed=0, model=None, **kw):
    torch.manual_seed(seed)
    cfg = PpoLmConfig(**{**run_config(model, **kw), "model": LMConfig(**{**SMALL, **(model or {})}),
                         "generation": GenerationConfig(max_new_tokens=5)})
    return make_agent(cfg, text_env(seed), seed=seed).learner


def tiny_lm(tokenizer, seed=0, **kw):
    return build_causal_lm(LMConfig(**{**SMALL, **kw}), tokenizer, seed=seed)


# --------------------------------------------------------------------------- LoRA


def test_lora_trains_only_the_adapter_and_the_reference_is_the_base_model(word_tokenizer, tmp_path):
    lm = tiny_lm(word_tokenizer)
    base = copy.deepcopy(lm).eval()
    agent = rlkit2.make("ppo_lm", text_env(), model=lm, tokenizer=word_tokenizer,
                        config=run_config(model={"lora": LORA}), lr=1e-2)
    lrn = agent.learner
    policy = lrn.policy
    assert "peft" in unsupported_reason(policy.lm)  # KVDecoder refuses the adapter model: the HF forward runs
    assert any("peft adapter" in m for m in adapters._LOGGED)  # and the builder said so (once)
    trainable = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("value_head") for n in trainable)
    assert len(lrn.optimizer.param_groups[0]["params"]) == len(trainable)
    assert list(lrn.reference.parameters()) == [] and lrn.state_dict()["reference"] == {}  # no second copy
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    for _ in range(3):
        lrn.step()
    assert len(lrn.optimizer.state) == len(trainable)  # Adam moments only for the adapter (and value head)
    for n, p in policy.named_parameters():
        if n in trainable:
            continue
        assert torch.equal(p, before[n]), f"base weight {n} moved"
    assert any(not torch.equal(p, before[n]) for n, p in policy.named_parameters() if "lora_B" in n)
    # the reference log-probs of the last rollout are the base model's, the policy's are not any more
    b = lrn.replay.all()
    with torch.no_grad():
        want = response_logprobs(base, b.query_ids, b.query_mask, b.response_ids, b.response_mask,
                                 suppress_ids=lrn.actor.suppress_ids)["logprobs"]
        now = response_logprobs(lrn.reference, b.query_ids, b.query_mask, b.response_ids, b.response_mask,
                                suppress_ids=lrn.actor.suppress_ids)["logprobs"]
        pol = response_logprobs(policy, b.query_ids, b.query_mask, b.response_ids, b.response_mask,
                                suppress_ids=lrn.actor.suppress_ids)["logprobs"]
    assert torch.allclose(b.ref_logprobs, want, atol=1e-5)
    assert torch.allclose(now, want, atol=1e-5)
    assert (pol - want).abs().max() > 1e-3
    # saved as a plain HF model: the adapters merged into (a copy of) the base weights
    from rlkit2.api import load_language_policy, save_language_policy

    loaded, _ = load_language_policy(save_language_policy(lrn, tmp_path / "hf"))
    assert adapters.is_peft_model(policy.lm) and not adapters.is_peft_model(loaded)
    with torch.no_grad():
        saved = response_logprobs(loaded, b.query_ids, b.query_mask, b.response_ids, b.response_mask,
                                  suppress_ids=lrn.actor.suppress_ids)["logprobs"]
    assert torch.allclose(saved, pol, atol=1e-4)


def test_lora_settings_are_validated(word_tokenizer):
    for bad, match in (({"r": -1}, "agent.model.lora.r"), ({"r": 4, "alpha": 0.0}, "agent.model.lora.alpha"),
                       ({"r": 4, "dropout": 1.5}, "agent.model.lora.dropout"),
                       ({"r": 4, "target_modules": []}, "agent.model.lora.target_modules")):
        with pytest.raises(ConfigError, match=match):
            rlkit2.agent_config("ppo_lm", model={"lora": bad})
    with pytest.raises(ConfigError, match="disable_dropout"):  # a dropout that would be zeroed
        rlkit2.agent_config("ppo_lm", model={"lora": {"r": 4, "dropout": 0.1}})
    rlkit2.agent_config("ppo_lm", model={"lora": {"r": 4, "dropout": 0.1}}, disable_dropout=False)
    for name in ("warp", "jbond"):
        with pytest.raises(ConfigError, match=f"{name} does not support LoRA"):
            rlkit2.agent_config(name, model={"lora": {"r": 4}})
    with pytest.raises(ConfigError, match="name no module"):
        learner(model={"lora": {"r": 4, "target_modules": ["query_key_value"]}})


# --------------------------------------------------------------------------- gradient checkpointing


def test_gradient_checkpointing_gives_the_same_gradients():
    plain = learner(seed=1, lr=1e-3)
    ckpt = learner(seed=1, lr=1e-3, model={"gradient_checkpointing": True})
    assert uses_checkpointing(ckpt.policy) and not uses_checkpointing(plain.policy)
    assert ckpt.policy.lm.is_activation_checkpointing and ckpt.train_updates
    assert not uses_checkpointing(ckpt.reference)  # the reference never backpropagates
    ckpt.policy.load_state_dict(plain.policy.state_dict())
    plain.replay.clear()
    plain.collect()
    plain.compute_advantages()
    ckpt.replay.load_state_dict(plain.replay.state_dict())
    calls = []
    for layer in ckpt.policy.lm.model.layers:  # count the recomputed layers: checkpointing really runs
        fn = layer._gradient_checkpointing_func
        layer._gradient_checkpointing_func = lambda *a, _fn=fn, **k: calls.append(1) or _fn(*a, **k)
    mb = next(plain.replay.minibatches(8, 1))
    m_plain, m_ckpt = plain.update_minibatch(mb), ckpt.update_minibatch(mb)
    assert len(calls) == len(ckpt.policy.lm.model.layers)
    assert float(m_ckpt["train/loss"]) == pytest.approx(float(m_plain["train/loss"]), rel=1e-5, abs=1e-7)
    for (n, a), b in zip(plain.policy.named_parameters(), ckpt.policy.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), n
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), n


# --------------------------------------------------------------------------- a model handed to make


def test_make_takes_a_built_model_and_refuses_a_wrong_one(word_tokenizer):
    lm = tiny_lm(word_tokenizer, seed=3)
    agent = rlkit2.make("ppo_lm", text_env(), model=lm, tokenizer=word_tokenizer, config=run_config(), lr=1e-3)
    lrn = agent.learner
    assert lrn.policy.lm is lm and lrn.reference is not lm
    assert all(torch.equal(a, b) for a, b in zip(lm.parameters(), lrn.reference.parameters(), strict=True))
    assert not any(p.requires_grad for p in lrn.reference.parameters())
    lrn.step()
    assert any(not torch.equal(a, b) for a, b in zip(lm.parameters(), lrn.reference.parameters(), strict=True))
    # the mapping form still overrides agent.model
    assert rlkit2.agent_config("ppo_lm", model={"hidden_size": 48}).model.hidden_size == 48

    from transformers import AutoModelForCausalLM, GPT2Config, GPT2Model

    with pytest.raises(ConfigError, match="causal LM"):
        rlkit2.make("ppo_lm", text_env(), model=torch.nn.Linear(4, 4), tokenizer=word_tokenizer)
    with pytest.raises(ConfigError, match="causal LM"):  # a transformer without an LM head
        rlkit2.make("ppo_lm", text_env(), model=GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=64,
                    bos_token_id=0, eos_token_id=1)), tokenizer=word_tokenizer)
    small_vocab = AutoModelForCausalLM.from_config(tiny_config(LMConfig(**SMALL), 8))
    with pytest.raises(ConfigError, match="vocabulary"):
        rlkit2.make("ppo_lm", text_env(), model=small_vocab, tokenizer=word_tokenizer)
    with pytest.raises(ConfigError, match="tokenizer"):
        rlkit2.make("ppo_lm", text_env(), model=tiny_lm(word_tokenizer))
    with pytest.raises(ConfigError, match="only language"):
        rlkit2.make("td3", rlkit2.EnvSpec(obs_dim=3, act_dim=1), model=tiny_lm(word_tokenizer))


# --------------------------------------------------------------------------- fp16


def test_fp16_trains_with_dynamic_loss_scaling(tmp_path, monkeypatch):
    assert not learner().scaler.is_enabled() and not learner(model={"dtype": "bf16"}).scaler.is_enabled()
    h = learner(lr=1e-6, model={"dtype": "fp16"})
    assert h.scaler.is_enabled() and h.master_params is not None
    start = [m.detach().clone() for m in h.master_params]
    norms = [float(h.step()["train/grad_norm"]) for _ in range(3)]
    assert any(torch.isfinite(torch.tensor(n)) for n in norms)  # (a first overflowing step is skipped)
    moved = sum(int((m != s).sum()) for m, s in zip(h.master_params, start, strict=True))
    assert moved / sum(s.numel() for s in start) > 0.9  # lr 1e-6 still moves the fp32 master

    # tiny gradients: fp16 underflows them to 0 without the scale, keeps them with it
    def nonzero_grads(lrn):
        orig = lrn.minibatch_loss
        monkeypatch.setattr(lrn, "minibatch_loss", lambda *a: (lambda lm: (lm[0] * 1e-6, lm[1]))(orig(*a)))
        lrn.replay.clear()
        lrn.collect()
        lrn.compute_advantages()
        lrn.update_minibatch(next(lrn.replay.minibatches(8, 1)))
        grads = [m.grad for m in lrn.master_params if m.grad is not None]
        return sum(int((g != 0).sum()) for g in grads) / sum(m.numel() for m in lrn.master_params)

    scaled = nonzero_grads(learner(lr=1e-6, model={"dtype": "fp16"}))
    unscaled = nonzero_grads(learner(lr=1e-6, model={"dtype": "fp16"}, loss_scaling="off"))
    print(f"non-zero fp16 gradient entries at loss x 1e-6: scaled {scaled:.3f}, unscaled {unscaled:.3f}")
    assert scaled > 0.9 and unscaled < 0.5 * scaled

    # a step whose gradients hold inf is skipped and the scale halves
    scale = h.scaler.get_scale()
    before = [m.detach().clone() for m in h.master_params]
    orig = h.minibatch_loss
    monkeypatch.setattr(h, "minibatch_loss", lambda *a: (lambda lm: (lm[0] * float("inf"), lm[1]))(orig(*a)))
    h.update_minibatch(next(h.replay.minibatches(8, 1)))
    assert all(torch.equal(m, b) for m, b in zip(h.master_params, before, strict=True))
    assert h.scaler.get_scale() == scale / 2
    # the scale resumes from a checkpoint
    from rlkit2 import checkpoint

    checkpoint.save(h.state_dict(), tmp_path / "h.pt")
    other = learner(seed=2, lr=1e-6, model={"dtype": "fp16"})
    other.load_state_dict(checkpoint.load(tmp_path / "h.pt"))
    assert other.scaler.get_scale() == h.scaler.get_scale()
    with pytest.raises(ConfigError, match="agent.loss_scaling"):
        PpoLmConfig(loss_scaling="static")
