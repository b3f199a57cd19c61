"""Offline agents: behaviour on tiny problems with known answers, and exact resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2 import checkpoint
from rlkit2.agents.qsarsa import QsarsaAC2Config, QsarsaACConfig, QsarsaACLearner, QSarsaLearner
from rlkit2.agents.td3_bc import TD3BCConfig, TD3BCLearner
from rlkit2.agents.td3_bc.common import episode_returns_from_transitions
from rlkit2.core import ConfigError, DataError, EnvSpec, evaluate
from rlkit2.registry import get_agent
from rlkit2.replay import TransitionReplay
from tests.offline.tiny import PointMass, chain_dataset, chain_exact_q, point_mass_dataset, replay_of

SMALL = {"hidden": [64, 64], "batch_size": 64}


def small_config(name: str, **over):
    entry = get_agent(name)
    fields = {f for f in entry.config_cls.__dataclass_fields__}
    kw = {k: v for k, v in {**SMALL, **over}.items() if k in fields}
    return entry, entry.config_cls(**kw)


def test_registry_declares_all_offline_agents():
    for name in ("td3_bc", "iql", "cql", "qsarsa", "qsarsa_ac", "qsarsa_ac2"):
        entry = get_agent(name)
        assert entry.offline and entry.family == "control"
        assert entry.config_cls().name == name


def test_qsarsa_with_zero_weights_trains_exactly_like_td3_bc():
    data, _ = point_mass_dataset(episodes=20)
    spec = EnvSpec(2, 1)
    a = TD3BCLearner(TD3BCConfig(**SMALL), spec, replay_of(data, seed=3), seed=5)
    b = QsarsaACLearner(QsarsaACConfig(**SMALL, eta=0.0, beta=0.0, kappa=0.0), spec, replay_of(data, seed=3), seed=5)
    for _ in range(12):
        ma, mb = a.step(), b.step()
        assert torch.equal(ma["critic_loss"], mb["critic_loss"]) and torch.equal(ma["actor_loss"], mb["actor_loss"])
    for name in ("actor", "critic", "actor_target", "critic_target"):
        for pa, pb in zip(a.modules[name].parameters(), b.modules[name].parameters(), strict=True):
            assert torch.equal(pa, pb), name
    assert float(mb["q_sarsa_loss"]) > 0  # Q_sarsa itself did train alongside


def test_q_sarsa_converges_to_the_exact_behaviour_value_on_a_chain():
    n, p_right, gamma = 5, 0.7, 0.9
    exact = chain_exact_q(n, p_right, gamma)
    replay = replay_of(chain_dataset(n, p_right, 4000, seed=1), seed=0)
    torch.manual_seed(0)
    est = QSarsaLearner(n, 1, replay=replay, hidden=(64, 64), lr=1e-3, gamma=gamma, tau=0.05, batch_size=128)
    for _ in range(1500):
        est.step()
    eye = torch.eye(n)
    with torch.no_grad():
        for s in range(n - 1):
            for j, act in enumerate((-1.0, 1.0)):
                got = est.q(est.normalizer(eye[s : s + 1]), torch.tensor([[act]])).item()  # q takes normalised obs
                assert got == pytest.approx(exact[s, j], abs=0.04), (s, act, got, exact[s, j])
    # A Q-learning target (max over actions) would converge elsewhere: Q^beta is not Q*.
    assert exact[0, 1] < 0.9 ** 3 - 0.05


@pytest.mark.parametrize("name", ["td3_bc", "iql", "cql", "qsarsa_ac", "qsarsa_ac2"])
def test_agent_beats_its_behaviour_policy_on_a_point_mass(name):
    data, behaviour_return = point_mass_dataset(episodes=150)
    entry, cfg = small_config(name, **({"reward_scaling": "none"} if name == "iql" else {}))
    agent = entry.builder(cfg, EnvSpec(2, 1), replay_of(data), 0)
    env = PointMass()
    before = evaluate(env, agent.policy, 20, seed=123)["eval/return"]
    for _ in range(700):
        agent.learner.step()
    after = evaluate(env, agent.policy, 20, seed=123)["eval/return"]
    assert after > behaviour_return + 0.3 and after > before, (before, behaviour_return, after)


def test_offline_bc_clones_the_behaviour_policy():
    """The BC reference row: TD3+BC's actor on the BC term alone reaches the behaviour policy's level."""
    data, behaviour_return = point_mass_dataset(episodes=150)
    entry, cfg = small_config("offline_bc")
    agent = entry.builder(cfg, EnvSpec(2, 1), replay_of(data), 0)
    env = PointMass()
    before = evaluate(env, agent.policy, 20, seed=123)["eval/return"]
    losses = [float(agent.learner.step()["bc_loss"]) for _ in range(700)]
    after = evaluate(env, agent.policy, 20, seed=123)["eval/return"]
    assert np.mean(losses[-50:]) < 0.95 * np.mean(losses[:50])  # down to the behaviour noise it cannot fit
    assert after > before and after > behaviour_return - 0.3, (before, behaviour_return, after)
    assert set(agent.learner.modules) == {"actor", "normalizer"}  # no critic: nothing but the BC term


@pytest.mark.parametrize("name", ["td3_bc", "iql", "cql", "qsarsa_ac2", "offline_bc"])
def test_state_dict_round_trip_resumes_to_identical_numbers(name, tmp_path):
    data, _ = point_mass_dataset(episodes=20)
    entry, cfg = small_config(name)
    first = entry.builder(cfg, EnvSpec(2, 1), replay_of(data, seed=1), 0).learner
    for _ in range(7):
        first.step()
    checkpoint.save({"learner": first.state_dict()}, tmp_path / "c.pt")
    straight = [first.step() for _ in range(6)]
    other = entry.builder(cfg, EnvSpec(2, 1), replay_of(data, seed=99), 42).learner  # other init, other sampler
    other.load_state_dict(checkpoint.load(tmp_path / "c.pt")["learner"])
    resumed = [other.step() for _ in range(6)]
    for m1, m2 in zip(straight, resumed, strict=True):
        assert {k: float(v) for k, v in m1.items()} == {k: float(v) for k, v in m2.items()}
    for k, mod in first.modules.items():
        for p1, p2 in zip(mod.state_dict().values(), other.modules[k].state_dict().values(), strict=True):
            assert torch.equal(p1, p2), k


def test_q_sarsa_has_its_own_checkpoint_and_refuses_a_corrupt_one(tmp_path):
    data, _ = point_mass_dataset(episodes=10)
    est = QSarsaLearner(2, 1, replay=replay_of(data), hidden=(32,), batch_size=32)
    for _ in range(5):
        est.step()
    est.save(tmp_path / "qs.pt")
    cfg = QsarsaAC2Config(**SMALL, q_sarsa_checkpoint=str(tmp_path / "qs.pt"), freeze_q_sarsa=True)
    cfg.hidden = [32]
    learner = QsarsaACLearner(cfg, EnvSpec(2, 1), replay_of(data), 0)
    for p1, p2 in zip(est.q_net.parameters(), learner.sarsa.q_net.parameters(), strict=True):
        assert torch.equal(p1, p2)
    before = [p.clone() for p in learner.sarsa.q_net.parameters()]
    m = learner.step()
    assert "q_sarsa_loss" not in m  # frozen
    assert all(torch.equal(a, b) for a, b in zip(before, learner.sarsa.q_net.parameters(), strict=True))
    # the agent's own normaliser and its replay's sampler are not replaced by the estimator's
    other = QSarsaLearner(2, 1, replay=replay_of(data, seed=5), hidden=(32,), batch_size=32)
    other.normalizer.mean.add_(1.0)
    other.save(tmp_path / "shifted.pt")
    cfg.q_sarsa_checkpoint = str(tmp_path / "shifted.pt")
    with pytest.raises(DataError, match="another observation normalisation"):
        QsarsaACLearner(cfg, EnvSpec(2, 1), replay_of(data), 0)
    raw = (tmp_path / "qs.pt").read_bytes()
    (tmp_path / "qs.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="corrupted or truncated"):
        QSarsaLearner(2, 1, hidden=(32,)).load(tmp_path / "qs.pt")


def test_q_sarsa_pretrained_then_frozen_in_one_run():
    """agent.sarsa_pretrain_steps: Q_sarsa alone first (actor, critic untouched), then frozen with freeze_q_sarsa."""
    data, _ = point_mass_dataset(episodes=10)
    cfg = QsarsaAC2Config(**{**SMALL, "hidden": [32]}, sarsa_pretrain_steps=4, freeze_q_sarsa=True)
    learner = QsarsaACLearner(cfg, EnvSpec(2, 1), replay_of(data), 0)
    actor0 = [p.clone() for p in learner.actor.parameters()]
    sarsa0 = [p.clone() for p in learner.sarsa.q_net.parameters()]
    for _ in range(4):
        assert set(learner.step()) == {"q_sarsa_loss"}
    assert all(torch.equal(a, b) for a, b in zip(actor0, learner.actor.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(sarsa0, learner.sarsa.q_net.parameters(), strict=True))
    pretrained = [p.clone() for p in learner.sarsa.q_net.parameters()]
    for _ in range(4):
        assert "critic_loss" in learner.step()
    assert all(torch.equal(a, b) for a, b in zip(pretrained, learner.sarsa.q_net.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(actor0, learner.actor.parameters(), strict=True))
    with pytest.raises(ConfigError, match="sarsa_pretrain_steps"):
        QsarsaACLearner(QsarsaAC2Config(**SMALL, freeze_q_sarsa=True), EnvSpec(2, 1), replay_of(data), 0)


def test_q_sarsa_agents_refuse_a_dataset_without_next_actions():
    data, _ = point_mass_dataset(episodes=5)
    data.pop("next_actions")
    with pytest.raises(DataError, match="next actions"):
        QsarsaACLearner(QsarsaACConfig(**SMALL), EnvSpec(2, 1), TransitionReplay.from_arrays(data), 0)


def test_bad_options_are_refused_with_their_names():
    data, _ = point_mass_dataset(episodes=5)
    with pytest.raises(ConfigError, match="kappa"):
        QsarsaACLearner(QsarsaACConfig(**SMALL, kappa=1.5), EnvSpec(2, 1), replay_of(data), 0)
    entry = get_agent("iql")
    with pytest.raises(ConfigError, match="reward_scaling"):
        entry.builder(entry.config_cls(reward_scaling="bogus"), EnvSpec(2, 1), replay_of(data), 0)
    with pytest.raises(ConfigError, match="unknown option"):
        entry.builder({"name": "iql", "nope": 1}, EnvSpec(2, 1), replay_of(data), 0)


def test_episode_returns_from_transitions_split_at_terminals_and_jumps():
    obs = np.array([[0.0], [1.0], [5.0], [6.0]], np.float32)
    nobs = np.array([[1.0], [2.0], [6.0], [7.0]], np.float32)  # row 1 -> row 2 jumps: a timeout
    arrays = {"observations": obs, "next_observations": nobs, "rewards": np.array([1.0, 2.0, 3.0, 4.0]),
              "terminals": np.array([0.0, 0.0, 1.0, 0.0])}
    assert episode_returns_from_transitions(arrays).tolist() == [3.0, 3.0, 4.0]


def test_cql_lagrange_variant_adapts_alpha_prime_and_stays_finite():
    data, _ = point_mass_dataset(episodes=10)
    entry, cfg = small_config("cql", lagrange=True, target_action_gap=0.0, num_sampled_actions=4)
    learner = entry.builder(cfg, EnvSpec(2, 1), replay_of(data), 0).learner
    start = learner.log_alpha_prime.item()
    for _ in range(20):
        m = learner.step()
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in m.values())
    assert learner.log_alpha_prime.item() != start and "alpha_prime" in m
