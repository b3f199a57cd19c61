"""Tiny Gemma / Gemma 2 / RecurrentGemma policies generating through the text env."""

from __future__ import annotations

import pytest
import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

from rlkit2.core import ConfigError, DataError, evaluate
from rlkit2.lm.generation import GenerationConfig, LMActor, response_logprobs, response_mask_from_ids
from rlkit2.lm.models import LMConfig, PolicyWithValue, build_causal_lm, tiny_config
from rlkit2.lm.synthetic import check, vocabulary
from rlkit2.registry import make_env
from rlkit2.rewards.toy import KeywordReward

ARCHS = ["gemma", "gemma2", "recurrent_gemma"]


def tiny(arch, tok, **kw):
    return build_causal_lm(LMConfig(arch=arch, hidden_size=32, num_layers=3, num_heads=2, num_kv_heads=1,
                                    intermediate_size=64, **kw), tok, seed=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_policy_generates_through_env(arch, word_tokenizer):
    env = make_env({"kind": "text", "reward": {"kind": "keyword", "word": "paris"}}, seed=0)
    actor = LMActor(tiny(arch, word_tokenizer), word_tokenizer, GenerationConfig(max_new_tokens=6))
    prompt, info = env.reset(seed=1)
    assert prompt.startswith("<doc>") and prompt.endswith("<sum>") and info["document"] in prompt
    response = actor.act(prompt)
    assert isinstance(response, str)
    assert all(w in vocabulary() for w in response.split())  # only vocabulary words, no special tokens
    _, reward, terminated, truncated, info = env.step(response)
    assert terminated and not truncated
    assert reward == float("paris" in response.split())
    assert info["success"] == check(info["document"], response).consistent


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_logprobs_match_greedy_generation_with_left_padding(arch, word_tokenizer):
    """The teacher-forced forward (positions skip left padding) must agree with cached generation."""
    lm = tiny(arch, word_tokenizer)
    actor = LMActor(lm, word_tokenizer, GenerationConfig(max_new_tokens=5), greedy=True)
    prompts = ["<doc> alice likes tea . <sum>", "<doc> bob owns a cat . carol lives in rome . dave likes jazz . <sum>"]
    ro = actor.rollout(prompts)
    assert ro.query_mask[0].sum() < ro.query_mask[1].sum()  # the first prompt is left-padded
    with torch.no_grad():
        q, qm, r, rm = ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask
        ids = torch.cat([q, r], 1)
        mask = torch.cat([qm, rm.long()], 1)
        from rlkit2.lm.models import lm_forward

        logits = lm_forward(lm, ids, mask).logits[:, q.shape[1] - 1 : -1]
    greedy = logits.argmax(-1)
    assert torch.equal(greedy[rm.bool()], r[rm.bool()])
    lp = response_logprobs(lm, q, qm, r, rm)["logprobs"]
    assert torch.allclose(lp, torch.log_softmax(logits.float(), -1).amax(-1) * rm, atol=1e-5)


def test_policy_value_head_shapes_and_zero_init(word_tokenizer):
    pv = PolicyWithValue(tiny("gemma2", word_tokenizer))
    ids = torch.randint(4, 20, (3, 7))
    logits, values = pv(ids, torch.ones_like(ids))
    assert logits.shape == (3, 7, len(word_tokenizer)) and values.shape == (3, 7)
    assert torch.all(values == 0)


def test_gemma2_tiny_config_has_its_features():
    cfg = tiny_config(LMConfig(arch="gemma2", num_layers=4), vocab_size=50)
    assert cfg.layer_types == ["sliding_attention", "full_attention"] * 2
    assert cfg.attn_logit_softcapping == 50.0 and cfg.final_logit_softcapping == 30.0
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # GQA


def test_recurrent_gemma_needs_three_layers(word_tokenizer):
    with pytest.raises(ConfigError, match=">= 3 layers"):
        build_causal_lm(LMConfig(arch="recurrent_gemma", num_layers=2), word_tokenizer)
    with pytest.raises(ConfigError, match="model.arch"):
        build_causal_lm(LMConfig(arch="llama9"), word_tokenizer)


def test_word_tokenizer_roundtrip(word_tokenizer):
    text = "alice lives in paris . bob owns a cat ."
    ids = word_tokenizer(text, add_special_tokens=False).input_ids
    assert word_tokenizer.decode(ids) == text
    assert (word_tokenizer.pad_token_id, word_tokenizer.eos_token_id, word_tokenizer.bos_token_id) == (0, 1, 2)


def test_response_mask_includes_first_eos_only():
    ids = torch.tensor([[5, 6, 1, 7, 1], [5, 1, 0, 0, 0], [5, 6, 7, 8, 9]])
    assert response_mask_from_ids(ids, eos_id=1, pad_id=0).tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1] * 5]


def test_env_from_jsonl_and_errors(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text('{"document": "alice likes tea ."}\n{"document": "bob owns a cat ."}\n')
    env = make_text_env(TextEnvConfig(dataset=str(p), metric="synthetic"), seed=0, reward_fn=KeywordReward("tea"))
    docs = sorted(env.sample_documents(2))
    assert docs == ["alice likes tea .", "bob owns a cat ."]
    assert env.score(["x", "y"], ["tea", "cat"]).tolist() == [1.0, 0.0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no document field"}\n')
    with pytest.raises(DataError, match="bad.jsonl:1.*'document'"):
        make_text_env(TextEnvConfig(dataset=str(bad)), seed=0)
    with pytest.raises(ConfigError, match="unknown text env option"):
        make_text_env({"kind": "text", "datset": "synthetic"}, seed=0)


def test_env_from_hf_dataset_dir(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"article": ["carol likes jazz .", "dave likes soup ."]}).save_to_disk(tmp_path / "ds")
    env = make_text_env(TextEnvConfig(dataset=str(tmp_path / "ds"), field="article"), seed=0)
    assert sorted(env.sample_documents(2)) == ["carol likes jazz .", "dave likes soup ."]


def test_core_evaluate_reports_true_consistency(word_tokenizer):
    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "tea"}), seed=0)

    class Copier:  # copies the first sentence of the document: always consistent
        def act(self, prompt):
            return prompt.split(" . ")[0].removeprefix("<doc> ") + " ."

        observe_first = observe = update = lambda *a, **k: None

    out = evaluate(env, Copier(), 5, seed=0)
    assert out["eval/success_rate"] == 1.0


@pytest.mark.parametrize("arch", ["gemma", "gemma2"])
def test_sampling_loop_records_exact_behaviour_logprobs_and_values(arch, word_tokenizer):
    """The KV-cache loop's recorded log-probs/values equal a teacher-forced forward (so PPO can skip one)."""
    torch.manual_seed(0)
    lm = build_causal_lm(LMConfig(arch=arch, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                                  intermediate_size=64, sliding_window=8), word_tokenizer, seed=0)
    pv = PolicyWithValue(lm)
    torch.nn.init.normal_(pv.value_head.weight, std=0.1)
    prompts = ["<doc> alice likes tea . <sum>", "<doc> bob owns a cat . carol lives in rome . dave likes jazz . <sum>"]
    actor = LMActor(pv, word_tokenizer, GenerationConfig(max_new_tokens=12, backend="loop"))
    ro = actor.rollout(prompts, num_samples=4)
    assert ro.logprobs is not None and ro.values is not None
    assert not torch.isin(ro.response_ids[ro.response_mask.bool()], torch.tensor(actor.suppress_ids)).any()
    with torch.no_grad():
        ref = response_logprobs(pv, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask,
                                with_values=True, suppress_ids=actor.suppress_ids)
    assert torch.allclose(ro.logprobs, ref["logprobs"], atol=1e-5)
    assert torch.allclose(ro.values, ref["values"], atol=1e-5)
    greedy_loop = LMActor(lm, word_tokenizer, GenerationConfig(max_new_tokens=8, backend="loop"), greedy=True)
    greedy_hf = LMActor(lm, word_tokenizer, GenerationConfig(max_new_tokens=8, backend="hf"), greedy=True)
    assert greedy_loop.act(prompts) == greedy_hf.act(prompts)
