"""Language-model pieces of rlkit2's RLHF family.

models.py      LMConfig, tiny Gemma / Gemma 2 / RecurrentGemma configs, build_causal_lm, build_word_tokenizer,
               PolicyWithValue (value head on the policy trunk), freeze
generation.py  GenerationConfig, LMActor (the text Actor: batched KV-cache sampling), Rollout,
               response_logprobs (teacher-forced token log-probs / values / entropy), decode_loop
replay.py      SequenceReplay / SequenceBatch (the one sequence replay)
sft.py         sft_loss, sft_train
synthetic.py   the checkable synthetic summarisation task (generators + exact checker)

The "lm" family runner is rlkit2.run.lm; the agents' builders live in rlkit2/agents/{ppo_lm,warp,bond}/builder.py
(this package imports nothing from rlkit2.agents).
"""
