"""WARP and J-BOND learners on a tiny random Gemma 2 and a keyword reward."""

from __future__ import annotations

import copy

import pytest
import torch
from rlkit2.envs.text import TextEnvConfig, make_text_env

from rlkit2.agents.bond import JBondConfig
from rlkit2.agents.bond.builder import make_agent as make_jbond
from rlkit2.agents.warp import WarpConfig
from rlkit2.agents.warp.builder import make_agent as make_warp
from rlkit2.core import ConfigError
from rlkit2.lm.generation import GenerationConfig
from rlkit2.lm.models import LMConfig
from rlkit2.merging import liti, slerp_merge
from rlkit2.registry import get_agent
from rlkit2.rewards.toy import KeywordReward

TINY = LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
GEN = GenerationConfig(max_new_tokens=6)


def _env():
    return make_text_env(TextEnvConfig(), seed=0, reward_fn=KeywordReward("paris"))


def _params(sd):
    return {k: v.clone() for k, v in sd.items()}


def test_registered_in_family_lm():
    assert get_agent("warp").family == "lm" and get_agent("jbond").family == "lm"
    assert get_agent("warp").config_cls is WarpConfig and get_agent("jbond").config_cls is JBondConfig


def test_builders_return_agents_with_greedy_and_sampling_actors():
    from rlkit2.core import Agent
    from rlkit2.lm.generation import LMActor

    for name, make, cfg in (("warp", make_warp, {"model": TINY, "generation": GEN}),
                            ("jbond", make_jbond, {"model": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                             "num_kv_heads": 1, "intermediate_size": 64}})):
        agent = make(cfg, _env(), None, 0)  # a mapping is converted to the agent's typed config
        assert isinstance(agent, Agent) and agent.name == name and agent.config.name == name
        assert isinstance(agent.config, get_agent(name).config_cls)
        assert isinstance(agent.policy, LMActor) and agent.policy.greedy and agent.spec is None
        assert agent.explorer is agent.learner.actor and not agent.explorer.greedy


def test_configs_compose_with_paper_defaults():
    from rlkit2.train import compose

    w = compose(["agent=warp"]).agent
    assert (w.name, w.kl_coef, w.ema_rate, w.liti_eta) == ("warp", 0.1, 0.01, 0.3)
    j = compose(["agent=jbond"]).agent
    assert (j.name, j.beta, j.anchor_rate, j.n) == ("jbond", 0.5, 0.02, 2)
    r = compose(["agent=warp", "env=text_synthetic", "reward=warm", "reward.directory=/some/folder"]).reward
    assert (r.kind, r.combine, r.directory) == ("warm", "average", "/some/folder")


def test_warp_anchor_is_an_ema_and_merge_is_slerp_then_liti():
    torch.manual_seed(0)
    cfg = WarpConfig(model=TINY, generation=GEN, steps_per_run=2, num_policies=2, prompts_per_step=4, lr=1e-2,
                     ema_rate=0.25)
    w = make_warp(cfg, _env(), seed=0).learner
    init0 = _params(w.lm.state_dict())
    w.step()
    theta = _params(w.lm.state_dict())
    anchor = w.anchor.state_dict()
    k = next(n for n, _ in w.lm.named_parameters())
    # EMA after one step from anchor = init: 0.75 init + 0.25 theta
    assert torch.allclose(anchor[k], 0.75 * init0[k] + 0.25 * theta[k], atol=1e-6)
    assert not torch.allclose(theta[k], init0[k])
    for _ in range(3):
        w.step()
    assert w.iteration == 1 and w.run == 0 and w.finished == []
    runs = w.last_iteration["runs"]
    assert len(runs) == 2 and not torch.allclose(runs[0][k], runs[1][k])  # two different runs
    expected = liti(init0, slerp_merge(init0, runs), 0.3)
    for name, v in w.lm.state_dict().items():
        assert torch.allclose(v, expected[name], atol=1e-6), name
    # the SFT reference (for evaluation KL) never moves
    assert torch.allclose(w.reference.state_dict()[k], init0[k])
    # the next run restarts from the merged init, with the anchor reset to it
    w.step()
    assert torch.allclose(w.anchor.state_dict()[k], 0.75 * expected[k] + 0.25 * w.lm.state_dict()[k], atol=1e-6)


def test_warp_checkpoint_resumes_mid_iteration():
    cfg = WarpConfig(model=TINY, generation=GEN, steps_per_run=2, num_policies=2, prompts_per_step=4, lr=1e-2)
    a = make_warp(cfg, _env(), seed=0).learner
    for _ in range(3):
        a.step()
    state = copy.deepcopy(a.state_dict())
    env_b = _env()
    env_b.sample_documents(3 * cfg.prompts_per_step)  # the prompt stream is the env's, not the learner's
    b = make_warp(cfg, env_b, seed=1).learner
    b.load_state_dict(state)
    assert b.steps == 3 and len(b.finished) == 1 and b.run == 1
    torch.manual_seed(5)
    a.step()
    torch.manual_seed(5)
    b.step()
    for (n, x), (_, y) in zip(a.lm.state_dict().items(), b.lm.state_dict().items(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), n


def test_jbond_anchor_ema_and_validation():
    torch.manual_seed(0)
    cfg = JBondConfig(model=TINY, generation=GEN, prompts_per_step=4, lr=1e-2, anchor_rate=0.5)
    j = make_jbond(cfg, _env()).learner
    ref = _params(j.reference.state_dict())
    m = j.step()
    k = next(n for n, _ in j.lm.named_parameters())
    assert torch.allclose(j.anchor.state_dict()[k], 0.5 * ref[k] + 0.5 * j.lm.state_dict()[k], atol=1e-6)
    assert torch.allclose(j.reference.state_dict()[k], ref[k])
    assert {"train/jbond_reward", "train/forward_nll", "train/backward_kl_est", "train/score"} <= set(m)
    assert len(j.replay) == 4
    with pytest.raises(ConfigError, match="two anchor samples"):
        make_jbond(JBondConfig(model=TINY, n=4), _env())


@pytest.mark.parametrize("variant,n", [("jbond", 2), ("bond", 4)])
def test_jbond_learns_a_keyword(variant, n):
    torch.manual_seed(0)
    env = _env()
    j = make_jbond(JBondConfig(model=TINY, generation=GEN, prompts_per_step=16, lr=2e-2, variant=variant, n=n),
                    env, seed=0).learner
    docs = env.sample_documents(128)
    prompts = [env.format_prompt(d) for d in docs]

    def score() -> float:
        torch.manual_seed(123)
        return float(env.score(docs, j.actor.rollout(prompts).texts).mean())

    before = score()
    for _ in range(40):
        j.step()
    after = score()
    assert after > before + 0.08, (before, after)
