"""Best-of-N actor: N samples, highest reward wins."""

from __future__ import annotations

import types

import pytest
import torch

from rlkit2.agents.bond.best_of_n import BestOfNActor, document_from_prompt
from rlkit2.core import ConfigError, evaluate


class ScriptedGenerator:
    """Returns the next items of a fixed script, n per prompt (what LMActor.rollout returns, minus tokens)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []

    def rollout(self, prompts, num_samples=1):
        self.calls.append((list(prompts), num_samples))
        out = [self.script.pop(0) for _ in range(len(prompts) * num_samples)]
        return types.SimpleNamespace(texts=out)


def count_good(documents, responses):
    return torch.tensor([float(r.split().count("good")) for r in responses])


def test_highest_reward_wins():
    gen = ScriptedGenerator(["a", "good good", "good", "x", "good", "b"])
    actor = BestOfNActor(gen, count_good, n=3)
    res = actor.select(["p1", "p2"])
    assert res.texts == ["good good", "good"]
    assert res.index.tolist() == [1, 1]
    assert res.rewards.tolist() == [2.0, 1.0]
    assert res.all_rewards.shape == (2, 3) and res.samples[1] == ["x", "good", "b"]
    assert gen.calls == [(["p1", "p2"], 3)]
    assert actor.samples_generated == 6 and actor.reward_calls == 6


def test_ties_pick_the_first_and_n1_is_plain_sampling():
    actor = BestOfNActor(ScriptedGenerator(["good a", "good b"]), count_good, n=2)
    assert actor.act("p") == "good a"
    one = BestOfNActor(ScriptedGenerator(["z"]), count_good, n=1)
    assert one.act(["p"]) == ["z"]
    with pytest.raises(ConfigError):
        BestOfNActor(ScriptedGenerator([]), count_good, n=0)


def test_documents_extracted_from_prompts_for_the_reward():
    extract = document_from_prompt("<doc> {document} <sum>")
    assert extract("<doc> alice owns a cat . <sum>") == "alice owns a cat ."
    assert extract("unrelated") == "unrelated"
    seen = []

    def reward(docs, resps):
        seen.extend(docs)
        return torch.zeros(len(resps))

    BestOfNActor(ScriptedGenerator(["a", "b"]), reward, n=2, document_fn=extract).act("<doc> D <sum>")
    assert seen == ["D", "D"]


def test_best_of_n_raises_the_mean_reward_of_a_random_generator():
    # Rewards iid uniform{0..9}: E[max of N] grows with N; evaluated through the one evaluate() loop.
    g = torch.Generator().manual_seed(0)

    class RandomDigits:
        def rollout(self, prompts, num_samples=1):
            n = len(prompts) * num_samples
            return types.SimpleNamespace(texts=[str(int(d)) for d in torch.randint(0, 10, (n,), generator=g)])

    class Env:  # one-step env rewarding the digit
        def reset(self, seed=None):
            return "p", {}

        def step(self, action):
            return "p", float(action), True, False, {}

    means = [evaluate(Env(), BestOfNActor(RandomDigits(), lambda d, r: torch.tensor([float(x) for x in r]), n),
                      200)["eval/return"] for n in (1, 4, 16)]
    assert means[0] < means[1] < means[2]
    assert means[2] > 8.5  # E[max of 16 uniform digits] = 9 - sum_{k<9} ((k+1)/10)^16 ~ 8.81
