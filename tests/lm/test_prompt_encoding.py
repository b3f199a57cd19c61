"""Prompts are encoded as the tokenizer intends: its default special tokens (a BOS where it adds one), or, with
`env.chat=true`, the chat template's rendering encoded without adding special tokens twice. Offline, tiny."""

from __future__ import annotations

import pytest
import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

from rlkit2.agents.ppo_lm.builder import make_agent
from rlkit2.agents.ppo_lm.config import PpoLmConfig
from rlkit2.core import ConfigError
from rlkit2.lm.generation import GenerationConfig, LMActor, encode_prompts, render_chat, response_logprobs
from rlkit2.lm.models import LMConfig, build_causal_lm, build_word_tokenizer
from rlkit2.lm.synthetic import vocabulary

CHAT_WORDS = ["<start_of_turn>", "<end_of_turn>", "user", "model"]
# Gemma-style: the template writes <bos> itself, then one turn per message and the model's turn opener
TEMPLATE = ("{{ bos_token }}{% for m in messages %}<start_of_turn> {{ m['role'] }} {{ m['content'] }} <end_of_turn> "
            "{% endfor %}{% if add_generation_prompt %}<start_of_turn> model {% endif %}")
PROMPTS = ["<doc> alice likes tea . <sum>", "<doc> bob owns a cat . carol lives in rome . <sum>"]


@pytest.fixture(scope="module")
def bos_tok():
    return build_word_tokenizer(list(vocabulary()) + CHAT_WORDS, add_bos=True)


@pytest.fixture(scope="module")
def chat_tok():
    tok = build_word_tokenizer(list(vocabulary()) + CHAT_WORDS, add_bos=True)
    tok.chat_template = TEMPLATE
    return tok


def tiny_lm(tok):
    return build_causal_lm(LMConfig(arch="gemma", hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                                    intermediate_size=64), tok, seed=0)


def first_real(ids, mask):
    return ids.gather(1, mask.argmax(1, keepdim=True)).squeeze(1)  # left padding: first unmasked token


def test_word_tokenizer_without_bos_is_unchanged(word_tokenizer):
    ids, mask = encode_prompts(word_tokenizer, PROMPTS, 256)
    ref = word_tokenizer(PROMPTS, padding=True, return_tensors="pt", add_special_tokens=False)
    assert torch.equal(ids, ref.input_ids) and torch.equal(mask, ref.attention_mask)
    assert word_tokenizer.bos_token_id not in ids[mask.bool()].tolist()


def test_prompts_start_with_bos_and_truncation_keeps_it(bos_tok):
    ids, mask = encode_prompts(bos_tok, PROMPTS, 256)
    assert (first_real(ids, mask) == bos_tok.bos_token_id).all()
    assert (ids == bos_tok.bos_token_id).sum() == len(PROMPTS)  # exactly one each
    assert ids[0, 0] == bos_tok.pad_token_id  # left-padded
    short, smask = encode_prompts(bos_tok, PROMPTS, 4)  # left truncation keeps the BOS and the last words
    assert short.shape[1] == 4 and (short[:, 0] == bos_tok.bos_token_id).all()
    assert bos_tok.convert_ids_to_tokens(short[1, 1:].tolist()) == ["rome", ".", "<sum>"]


@pytest.mark.parametrize("backend", ["loop", "hf"])
def test_rollout_query_ids_start_with_bos_and_score_consistently(bos_tok, backend):
    lm = tiny_lm(bos_tok)
    actor = LMActor(lm, bos_tok, GenerationConfig(max_new_tokens=4, backend=backend), greedy=True)
    ro = actor.rollout(PROMPTS)
    q, qm = encode_prompts(bos_tok, PROMPTS, 256)
    assert torch.equal(ro.query_ids, q) and torch.equal(ro.query_mask, qm)  # the ids generation saw
    assert (first_real(ro.query_ids, ro.query_mask) == bos_tok.bos_token_id).all()
    lp = response_logprobs(lm, ro.query_ids, ro.query_mask, ro.response_ids, ro.response_mask,
                           suppress_ids=actor.suppress_ids)["logprobs"]
    if ro.logprobs is not None:  # the loop's behaviour log-probs = a teacher-forced forward over the same query
        assert torch.allclose(lp, ro.logprobs, atol=1e-5)


def test_ppo_replay_stores_the_bos_led_query(bos_tok):
    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}), 0)
    cfg = PpoLmConfig(model=LMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                      generation=GenerationConfig(max_new_tokens=4), algo="rloo", samples_per_prompt=2,
                      prompts_per_step=2, minibatch_size=4)
    learner = make_agent(cfg, env, seed=0, tokenizer=bos_tok).learner
    learner.collect()
    b = learner.replay.all()
    q, qm = b.fields["query_ids"], b.fields["query_mask"]
    assert (first_real(q, qm) == bos_tok.bos_token_id).all()
    assert torch.equal(q, encode_prompts(bos_tok, b.prompts, cfg.generation.max_prompt_tokens)[0])


def test_chat_template_renders_one_user_turn_with_a_single_bos(chat_tok):
    text = render_chat(chat_tok, PROMPTS[0])
    assert text == f"<bos><start_of_turn> user {PROMPTS[0]} <end_of_turn> <start_of_turn> model "
    ids, mask = encode_prompts(chat_tok, PROMPTS, 256, chat=True)
    assert (ids == chat_tok.bos_token_id).sum() == len(PROMPTS)  # the template's BOS, not a second one
    assert (first_real(ids, mask) == chat_tok.bos_token_id).all()
    row = chat_tok.convert_ids_to_tokens(ids[0][mask[0].bool()].tolist())
    assert row[:3] == ["<bos>", "<start_of_turn>", "user"] and row[-2:] == ["<start_of_turn>", "model"]


def test_env_chat_flows_to_the_learner_and_greedy_actors(chat_tok):
    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}, chat=True), 0)
    cfg = PpoLmConfig(model=LMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                      generation=GenerationConfig(max_new_tokens=3), algo="reinforce", prompts_per_step=2,
                      minibatch_size=2)
    agent = make_agent(cfg, env, seed=0, tokenizer=chat_tok)
    assert agent.learner.actor.chat and agent.policy.chat
    ro = agent.learner.actor.rollout(PROMPTS)
    assert torch.equal(ro.query_ids, encode_prompts(chat_tok, PROMPTS, 256, chat=True)[0])


def test_chat_without_template_is_a_config_error(word_tokenizer):
    with pytest.raises(ConfigError, match="chat template"):
        LMActor(tiny_lm(word_tokenizer), word_tokenizer, chat=True)
    with pytest.raises(ConfigError, match="chat template"):
        encode_prompts(word_tokenizer, PROMPTS, 256, chat=True)
    env = make_text_env(TextEnvConfig(reward={"kind": "keyword", "word": "paris"}, chat=True), 0)
    cfg = PpoLmConfig(model=LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64))
    with pytest.raises(ConfigError, match="env.chat"):
        make_agent(cfg, env, seed=0, tokenizer=word_tokenizer)
    with pytest.raises(ConfigError, match="env.chat"):
        make_text_env({"kind": "text", "chat": "yes"}, 0)
