"""Language policies at scale: dropout off during PPO, fp32 master weights for bf16 models, gradient
accumulation equal to the big-batch update, linear LR warm-up that resumes exactly."""

from __future__ import annotations

import pytest
import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

from rlkit2.agents.ppo_lm import losses as L
from rlkit2.agents.ppo_lm.builder import make_agent
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.core import ConfigError
from rlkit2.lm.generation import GenerationConfig
from rlkit2.lm.models import LMConfig


def learner(seed=0, model=None, gen=None, **kw):
    torch.manual_seed(seed)
    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}), seed)
    base = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    base.update(model or {})
    cfg = PpoLmConfig(model=LMConfig(**base), generation=GenerationConfig(max_new_tokens=5, **(gen or {})),
                      prompts_per_step=8, minibatch_size=8, ppo_epochs=1, kl_coef=0.01, **kw)
    return make_agent(cfg, env, seed=seed).learner


def first_ratios(monkeypatch, lrn):
    seen = []
    orig = L.ppo_policy_loss

    def spy(logprobs, old, adv, mask, clip):
        seen.append(((logprobs.detach() - old) * mask).abs().max().item())
        return orig(logprobs, old, adv, mask, clip)

    monkeypatch.setattr(L, "ppo_policy_loss", spy)
    lrn.step()
    return seen[0]


@pytest.mark.parametrize("backend", ["loop", "hf"])
def test_dropout_is_off_so_the_first_ratio_is_one(monkeypatch, backend):
    on = learner(model={"arch": "gemma", "dropout": 0.5}, gen={"backend": backend})
    assert on.policy.lm.config.attention_dropout == 0.0 and not on.policy.training
    assert first_ratios(monkeypatch, on) == pytest.approx(0.0, abs=1e-5)  # log-ratio 0: ratio 1
    off = learner(model={"arch": "gemma", "dropout": 0.5}, gen={"backend": backend}, disable_dropout=False)
    assert first_ratios(monkeypatch, off) > 1e-3  # what dropout in the update did before


def test_disable_dropout_zeroes_gpt2_dropout():
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlkit2.lm.models import disable_dropout

    torch.manual_seed(0)
    lm = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=20, resid_pdrop=0.5, embd_pdrop=0.5,
                                    attn_pdrop=0.5, bos_token_id=0, eos_token_id=1))
    disable_dropout(lm).train()
    x = torch.randint(0, 20, (2, 6))
    assert torch.equal(lm(x).logits, lm(x).logits)


def changed_fraction(lrn):
    before = [p.detach().clone() for p in lrn.policy.lm.parameters()]
    lrn.step()
    changed = sum(int((p.detach() != b).sum()) for p, b in zip(lrn.policy.lm.parameters(), before, strict=True))
    return changed / sum(b.numel() for b in before)


def test_bf16_trains_with_fp32_master_weights(tmp_path):
    fp32 = changed_fraction(learner(lr=1e-6))
    master = learner(lr=1e-6, model={"dtype": "bf16"})
    assert master.master_params is not None and master.master_params[0].dtype == torch.float32
    bf16_master = changed_fraction(master)
    # after one step the bf16 weights have not moved (a 1e-6 step is below bf16 resolution): the master has
    moved = sum(int((m != p.float()).sum()) for m, p in zip(master.master_params, master.model_params, strict=True))
    plain = changed_fraction(learner(lr=1e-6, model={"dtype": "bf16"}, precision="model"))
    print(f"fraction of weights changed by one step at lr 1e-6: fp32 {fp32:.4f}, bf16 + fp32 master "
          f"(bf16 view) {bf16_master:.4f}, master {moved / sum(p.numel() for p in master.master_params):.4f}, "
          f"plain bf16 Adam {plain:.4f}")
    assert fp32 > 0.9
    assert moved / sum(p.numel() for p in master.master_params) > 0.9
    assert plain < 0.2  # plain bf16 Adam rounds most updates away (or moves weights by a whole bf16 ulp)
    # checkpoint/resume keeps the fp32 master (not the bf16 rounding of it)
    from rlkit2 import checkpoint

    checkpoint.save(master.state_dict(), tmp_path / "m.pt")
    other = learner(seed=3, lr=1e-6, model={"dtype": "bf16"})
    other.load_state_dict(checkpoint.load(tmp_path / "m.pt"))
    assert all(torch.equal(a, b) for a, b in zip(other.master_params, master.master_params, strict=True))


def test_grad_accumulation_equals_the_big_batch_update():
    torch.manual_seed(0)
    big = learner(seed=1, lr=1e-3)
    small = learner(seed=1, lr=1e-3, grad_accum_steps=3)
    small.policy.load_state_dict(big.policy.state_dict())
    big.replay.clear()
    big.collect()
    big.compute_advantages()
    small.replay.load_state_dict(big.replay.state_dict())
    mb = next(big.replay.minibatches(8, 1))
    mb_big = big.update_minibatch(mb)
    mb_small = small.update_minibatch(mb)
    for k in ("train/loss", "train/ratio", "train/value_loss"):
        assert float(mb_small[k]) == pytest.approx(float(mb_big[k]), rel=1e-4, abs=1e-6), k
    for (n, a), b in zip(big.policy.named_parameters(), small.policy.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), n


def test_lr_warmup_and_exact_resume(tmp_path):
    from rlkit2 import checkpoint

    a = learner(lr=1e-3, lr_warmup_steps=4)  # 8 sequences, minibatch 8, 1 epoch: one optimiser step per iteration
    lrs = []
    for _ in range(2):
        lrs.append(float(a.step()["train/lr"]))
    checkpoint.save(a.state_dict(), tmp_path / "a.pt")
    b = learner(seed=2, lr=1e-3, lr_warmup_steps=4)
    b.load_state_dict(checkpoint.load(tmp_path / "a.pt"))
    for _ in range(3):
        torch.manual_seed(7)
        ma = a.step()
        torch.manual_seed(7)
        mb = b.step()
        lrs.append(float(ma["train/lr"]))
        assert float(mb["train/lr"]) == float(ma["train/lr"])
        assert float(mb["train/loss"]) == pytest.approx(float(ma["train/loss"]), rel=1e-5)
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])
    assert b.scheduler.state_dict() == a.scheduler.state_dict()


def test_new_options_are_validated():
    with pytest.raises(ConfigError, match="agent.precision"):
        PpoLmConfig(precision="fp8")
    with pytest.raises(ConfigError, match="agent.grad_accum_steps"):
        PpoLmConfig(grad_accum_steps=0)
    with pytest.raises(ConfigError, match="grad_accum_steps"):
        PpoLmConfig(grad_accum_steps=32, minibatch_size=16)
    with pytest.raises(ConfigError, match="agent.lr_warmup_steps"):
        PpoLmConfig(lr_warmup_steps=-1)
    with pytest.raises(ConfigError, match="agent.model.dropout"):
        PpoLmConfig(model=LMConfig(dropout=1.5))


@pytest.mark.parametrize("backend", ["loop", "hf"])
def test_generation_stops_at_any_of_two_eos_ids(word_tokenizer, backend):
    from rlkit2.lm.generation import LMActor
    from rlkit2.lm.models import build_causal_lm

    tok = word_tokenizer
    lm = build_causal_lm(LMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                         tok, seed=0)
    prompts = ["what is the capital of france", "say paris", "the city"]
    plain = LMActor(lm, tok, GenerationConfig(max_new_tokens=6, backend=backend), greedy=True).rollout(prompts)
    stop = int(plain.response_ids[0, 0])  # the first token row 0 emits: make it a stop token
    assert stop != tok.eos_token_id
    cfg = GenerationConfig(max_new_tokens=6, backend=backend, eos_token_ids=[tok.eos_token_id, stop])
    ro = LMActor(lm, tok, cfg, greedy=True).rollout(prompts)
    assert float(ro.response_mask[0, 0]) == 1.0 and ro.response_mask[0, 1:].sum() == 0
    assert int(ro.response_ids[0, 0]) == stop and plain.response_mask[0].sum() > 1
    for row, m in zip(ro.response_ids, ro.response_mask, strict=True):  # nothing is kept after either stop id
        n = int(m.sum())
        stops = [i for i, t in enumerate(row.tolist()) if t in (tok.eos_token_id, stop)]
        assert n == (stops[0] + 1 if stops else row.shape[0])
    with pytest.raises(ConfigError, match="eos_token_ids"):
        PpoLmConfig(generation=GenerationConfig(eos_token_ids=[-1]))
