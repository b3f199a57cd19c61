"""`KVDecoder` (the compact Gemma / Gemma 2 / Llama forward) must compute what the HF model computes."""

from __future__ import annotations

import pytest
import torch

from rlkit2.lm.fast_decode import KVDecoder, unsupported_reason
from rlkit2.lm.generation import GenerationConfig, decode_loop, response_logprobs
from rlkit2.lm.models import LMConfig, PolicyWithValue, build_causal_lm, lm_forward, position_ids_from_mask


def tiny(arch, tok, **kw):
    if arch == "llama":
        from transformers import AutoModelForCausalLM, LlamaConfig

        torch.manual_seed(0)
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, eos_token_id=1,
                          bos_token_id=2)
        lm = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    else:
        lm = build_causal_lm(LMConfig(arch=arch, hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2,
                                      intermediate_size=64, **kw), tok, seed=0)
    with torch.no_grad():  # non-trivial norm weights, so (1 + w) vs w scaling is exercised
        for name, p in lm.named_parameters():
            if "norm" in name:
                p.normal_(0.0, 0.3)
    return lm.eval()


def batch(tok, B=3, Lq=7, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, len(tok), (B, Lq + T), generator=g)
    mask = torch.ones(B, Lq + T, dtype=torch.long)
    mask[0, :3] = 0  # left padding of different lengths
    mask[1, :1] = 0
    mask[2, Lq + 3 :] = 0  # a response that stopped early
    return ids, mask, Lq


# sliding_window=4 < sequence length, so Gemma 2's local layers see a truncated window
@pytest.mark.parametrize("arch", ["gemma", "gemma2", "llama"])
def test_prefill_and_steps_equal_the_teacher_forced_forward(arch, word_tokenizer):
    lm = tiny(arch, word_tokenizer, sliding_window=4)
    ids, mask, Lq = batch(word_tokenizer)
    pos = position_ids_from_mask(mask)
    assert unsupported_reason(lm) is None
    with torch.no_grad():
        ref = lm(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
        dec = KVDecoder(lm, ids.shape[0], ids.shape[1])
        logits, hidden = dec.prefill(ids[:, :Lq], mask[:, :Lq], pos[:, :Lq])
        all_logits, all_hidden = [logits], [hidden]
        for t in range(Lq, ids.shape[1]):
            logits, hidden = dec.step(ids[:, t], mask[:, : t + 1], pos[:, t])
            all_logits.append(logits)
            all_hidden.append(hidden)
        real = mask.bool()
        got_logits, got_hidden = torch.cat(all_logits, 1), torch.cat(all_hidden, 1)
        assert torch.allclose(got_logits[real], ref.logits[real], atol=1e-5)
        assert torch.allclose(got_hidden[real], ref.hidden_states[-1][real], atol=1e-5)
        # the cache-free forward, LM head from a later position on
        fwd, _ = KVDecoder(lm, ids.shape[0], ids.shape[1], cache=False).forward(ids, mask, pos, head_from=Lq - 1)
        assert torch.allclose(fwd[real[:, Lq - 1 :]], ref.logits[:, Lq - 1 :][real[:, Lq - 1 :]], atol=1e-5)
        with pytest.raises(ValueError, match="no room"):
            dec.step(ids[:, -1], mask, pos[:, -1])


@pytest.mark.parametrize("arch", ["gemma", "gemma2"])
def test_decode_loop_is_the_same_with_and_without_the_kv_decoder(arch, word_tokenizer):
    policy = PolicyWithValue(tiny(arch, word_tokenizer))
    with torch.no_grad():
        policy.value_head.weight.normal_()  # non-zero values
    ids, mask, Lq = batch(word_tokenizer, B=4, Lq=9, seed=1)
    q, qm = ids[:, :Lq], mask[:, :Lq].clone()
    qm[2:] = 1
    out = {}
    for kv in (True, False):
        cfg = GenerationConfig(max_new_tokens=8, min_new_tokens=2, kv_decoder=kv)
        out[kv] = decode_loop(policy.lm, q, qm, cfg, eos_id=1, pad_id=0, greedy=True, value_head=policy.value_head,
                              suppress_ids=(0, 2))
    assert torch.equal(out[True][0], out[False][0])
    assert torch.allclose(out[True][1], out[False][1], atol=1e-5)
    assert torch.allclose(out[True][2], out[False][2], atol=1e-5)
    assert not (out[True][0][:, :2] == 1).any()  # min_new_tokens: no EOS in the first two tokens


def test_hf_path_values_are_the_same_when_transformers_cannot_select_layers(word_tokenizer, monkeypatch):
    """Older transformers 5.x return no hidden states for `output_hidden_states=[-1]`; there every layer's are
    asked for (LAST_HIDDEN = True), and the value head must see the same last-layer state either way."""
    import rlkit2.lm.generation as generation
    import rlkit2.lm.models as models

    policy = PolicyWithValue(tiny("gemma2", word_tokenizer))
    with torch.no_grad():
        policy.value_head.weight.normal_()
    ids, mask, Lq = batch(word_tokenizer, B=4, Lq=9, seed=2)
    cfg = GenerationConfig(max_new_tokens=6, kv_decoder=False)
    out, fwd = {}, {}
    for selector in ([-1], True):
        monkeypatch.setattr(models, "LAST_HIDDEN", selector)
        monkeypatch.setattr(generation, "LAST_HIDDEN", selector)
        with torch.no_grad():
            out[str(selector)] = decode_loop(policy.lm, ids[:, :Lq], mask[:, :Lq], cfg, eos_id=1, pad_id=0,
                                             greedy=True, value_head=policy.value_head)
            fwd[str(selector)] = policy(ids, mask, kv_decoder=False)[1]
    for a, b in zip(out["[-1]"], out["True"], strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    assert torch.allclose(fwd["[-1]"], fwd["True"], atol=1e-6)


def test_reference_logprobs_through_the_kv_decoder_equal_the_hf_forward(word_tokenizer):
    lm = tiny("gemma2", word_tokenizer, sliding_window=4)
    ids, mask, Lq = batch(word_tokenizer)
    q, qm, r, rm = ids[:, :Lq], mask[:, :Lq], ids[:, Lq:], mask[:, Lq:].float()
    with torch.no_grad():
        fast = response_logprobs(lm, q, qm, r, rm, temperature=0.7, return_entropy=True, suppress_ids=(0, 2))
    # with gradients on, or kv_decoder=False, the HF module forward runs
    slow = response_logprobs(lm, q, qm, r, rm, temperature=0.7, return_entropy=True, suppress_ids=(0, 2))
    with torch.no_grad():
        off = response_logprobs(lm, q, qm, r, rm, temperature=0.7, return_entropy=True, suppress_ids=(0, 2),
                                kv_decoder=False)
    for k in ("logprobs", "entropy"):
        assert torch.allclose(fast[k], slow[k].detach(), atol=1e-5)
        assert torch.allclose(fast[k], off[k], atol=1e-5)
    logits = lm_forward(lm, ids, mask).logits[:, Lq - 1 : -1].float() / 0.7
    logits[..., [0, 2]] = float("-inf")
    want = torch.log_softmax(logits, -1).gather(-1, r[..., None]).squeeze(-1) * rm
    assert torch.allclose(fast["logprobs"], want.detach(), atol=1e-5)


def test_unsupported_models_fall_back(word_tokenizer):
    assert "model_type" in unsupported_reason(tiny("recurrent_gemma", word_tokenizer))
    lm = tiny("gemma2", word_tokenizer)
    handle = lm.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    assert "hooks" in unsupported_reason(lm)
    handle.remove()
    lm(input_ids=torch.tensor([[5, 6]]), output_hidden_states=True)  # transformers' own recorders don't count
    assert unsupported_reason(lm) is None
    # the sampling loop still runs, through the transformers model, for a model the decoder does not cover
    bf16 = build_causal_lm(LMConfig(arch="gemma2", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                                    intermediate_size=64, dtype="bf16"), word_tokenizer, seed=0)
    assert "float32" in unsupported_reason(bf16)
    ids, lps, _ = decode_loop(bf16, torch.tensor([[5, 6, 7]]), torch.ones(1, 3, dtype=torch.long),
                              GenerationConfig(max_new_tokens=3, min_new_tokens=3), eos_id=1, pad_id=0)
    assert ids.shape == lps.shape == (1, 3)


def test_refused_under_transformers_4(word_tokenizer, monkeypatch):
    """4.x applies Gemma's sqrt(hidden) embedding scale outside `embed_tokens`: the decoder is tested only on 5.x."""
    import transformers

    lm = tiny("gemma2", word_tokenizer)
    assert unsupported_reason(lm) is None
    monkeypatch.setattr(transformers, "__version__", "4.57.1")
    assert "transformers 4.57.1" in unsupported_reason(lm)


@pytest.mark.parametrize("value_head", [True, False])
def test_policy_forward_and_gradients_equal_the_hf_modules(value_head, word_tokenizer):
    """The learner's policy forward runs through KVDecoder: same logits, values and parameter gradients."""
    policy = PolicyWithValue(tiny("gemma2", word_tokenizer, sliding_window=4), value_head=value_head).train()
    if value_head:
        with torch.no_grad():
            policy.value_head.weight.normal_()
    ids, mask, Lq = batch(word_tokenizer)
    keep = ids.shape[1] - Lq + 1
    grads = []
    for fast in (True, False):
        policy.zero_grad()
        logits, values = policy(ids, mask, logits_to_keep=keep, kv_decoder=fast)
        real = mask[:, -keep:].bool()
        loss = (logits.log_softmax(-1)[..., 5] * real).sum()
        if values is not None:
            loss = loss + (values * real).pow(2).sum()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(policy.parameters()))
    for n in grads[0]:
        scale = grads[1][n].abs().max().clamp_min(1.0)  # float32 rounding grows with the gradient's size
        assert (grads[0][n] - grads[1][n]).abs().max() <= 1e-5 * scale, n
