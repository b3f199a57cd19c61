"""`rlkit2.make` with a dict of arrays: D4RL's layout (timeouts, no next_observations) goes through the loader's
`to_transitions`; Q-sarsa's next actions are derived when the rows are in episode order; widths are checked
against the EnvSpec and actions against its bounds, with errors naming the key, the shape or the count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rlkit2
from rlkit2 import DataError, EnvSpec


def d4rl_rows(episodes: int = 8, T: int = 25, obs_dim: int = 3, act_dim: int = 2, seed: int = 0):
    """Episodes in order, each ending in a timeout (the last one terminal): D4RL's layout, no next_observations."""
    r = np.random.default_rng(seed)
    obs, act, term, tout = [], [], [], []
    for e in range(episodes):
        s = r.normal(size=obs_dim)
        for t in range(T):
            a = np.tanh(0.5 * s[:act_dim] + r.normal(0, 0.1, act_dim))
            obs.append(s.copy())
            act.append(a)
            s = s + 0.1 * np.concatenate([a, np.zeros(obs_dim - act_dim)])
            last = t == T - 1
            term.append(last and e == episodes - 1)
            tout.append(last and e < episodes - 1)
    obs_a = np.asarray(obs, np.float32)
    return {"observations": obs_a, "actions": np.asarray(act, np.float32), "rewards": -np.abs(obs_a[:, 0]),
            "terminals": np.asarray(term), "timeouts": np.asarray(tout)}


def test_d4rl_layout_derives_next_observations_and_next_actions():
    rows = d4rl_rows()
    agent = rlkit2.make("qsarsa_ac", EnvSpec(3, 2), rows, hidden=[16, 16], batch_size=32)
    replay = agent.learner.replay
    data = replay.arrays()
    # each timeout row is dropped (its successor is a reset): 8 episodes x 25 rows - 7 timeouts
    assert len(replay) == 8 * 25 - 7 and replay.with_next_actions
    np.testing.assert_array_equal(data["next_observations"][0], rows["observations"][1])
    np.testing.assert_array_equal(data["next_actions"][0], rows["actions"][1])
    assert data["next_action_valid"].sum() == len(replay) - 1  # only the final terminal row has no a'
    for _ in range(3):
        metrics = agent.learner.step()
    assert np.isfinite(float(metrics["q_sarsa_loss"]))


def test_transitions_in_episode_order_get_next_actions_for_qsarsa():
    rows = d4rl_rows(episodes=3, T=10)
    obs = rows["observations"]
    nxt = np.concatenate([obs[1:], obs[-1:]])
    ends = rows["terminals"] | rows["timeouts"]
    nxt[ends] = obs[ends] + 5.0  # the episode's last s' is not the next row's s
    arrays = {"observations": obs, "actions": rows["actions"], "rewards": rows["rewards"], "next_observations": nxt,
              "terminals": rows["terminals"].astype(np.float32)}
    agent = rlkit2.make("qsarsa", EnvSpec(3, 2), arrays, hidden=[16], batch_size=8)
    data = agent.learner.replay.arrays()
    assert len(data["observations"]) == 30  # every transition kept
    np.testing.assert_array_equal(data["next_actions"][:9], rows["actions"][1:10])
    np.testing.assert_array_equal(data["next_action_valid"], np.where(ends, 0.0, 1.0))
    agent.learner.step()
    # shuffled rows: a' cannot be derived; the error says what to pass
    perm = np.random.default_rng(0).permutation(30)
    with pytest.raises(DataError, match=r"next_actions.*episode order"):
        rlkit2.make("qsarsa", EnvSpec(3, 2), {k: v[perm] for k, v in arrays.items()}, hidden=[16])
    # given next actions are used as they are; agents that do not need them do not get them derived
    given = {**arrays, "next_actions": np.zeros_like(rows["actions"])}
    assert rlkit2.make("qsarsa", EnvSpec(3, 2), given, hidden=[16]).learner.replay.arrays()["next_actions"].sum() == 0
    assert not rlkit2.make("td3_bc", EnvSpec(3, 2), arrays, hidden=[16]).learner.replay.with_next_actions


def test_wrong_width_spec_is_a_clear_error():
    rows = d4rl_rows()
    with pytest.raises(DataError, match=r"'observations' has shape \(200, 3\).*\(N, 4\).*obs_dim=4.*EnvSpec\("):
        rlkit2.make("td3_bc", EnvSpec(4, 2), rows)
    with pytest.raises(DataError, match=r"'actions' has shape \(200, 2\).*act_dim=3"):
        rlkit2.make("iql", EnvSpec(3, 3), rows)
    replay = rlkit2.TransitionReplay(10, 3, 2)
    with pytest.raises(DataError, match=r"replay's obs_dim is 3.*says 5"):
        rlkit2.make("td3_bc", EnvSpec(5, 2), replay)


def test_out_of_bounds_actions_are_refused_with_count_and_bound():
    rows = d4rl_rows()
    rows["actions"] = rows["actions"].copy()
    rows["actions"][[3, 50, 51], 1] = 1.7
    with pytest.raises(DataError, match=r"'actions' has 3 row\(s\) outside the action space \[-1, 1\]"):
        rlkit2.make("td3_bc", EnvSpec(3, 2), rows)
    # the spec's own bounds are the ones checked
    agent = rlkit2.make("td3_bc", EnvSpec(3, 2, action_low=-2.0, action_high=2.0), rows, hidden=[16])
    assert len(agent.learner.replay) == 193
    transitions = {"observations": rows["observations"], "actions": rows["actions"], "rewards": rows["rewards"],
                   "next_observations": rows["observations"], "terminals": np.zeros(200)}
    with pytest.raises(DataError, match="3 row"):
        rlkit2.make("bc", EnvSpec(3, 2), transitions)


def test_missing_keys_and_sample_only_replay_for_qsarsa():
    rows = d4rl_rows()
    no_flags = {k: v for k, v in rows.items() if k != "timeouts"}
    with pytest.raises(DataError, match=r"missing \['next_observations'\].*timeouts"):
        rlkit2.make("td3_bc", EnvSpec(3, 2), no_flags)

    class SampleOnly:
        def sample(self, batch_size):
            raise AssertionError("not reached")

    with pytest.raises(DataError, match=r"next actions.*with_next_actions"):
        rlkit2.make("qsarsa_ac", EnvSpec(3, 2), SampleOnly(), normalize_obs=False)


def test_readme_library_flow_data_train_save_load(tmp_path):
    """README's snippet: D4RL-layout arrays in, train, save_policy, load_policy, act."""
    data = d4rl_rows()
    torch.manual_seed(0)
    agent = rlkit2.make("qsarsa_ac", EnvSpec(obs_dim=3, act_dim=2), data, hidden=[32, 32], batch_size=64)
    for _ in range(20):
        agent.learner.step()
    rlkit2.save_policy(agent, tmp_path / "policy.pt")
    policy = rlkit2.load_policy(tmp_path / "policy.pt")
    obs = data["observations"][:5]
    np.testing.assert_array_equal(policy(obs), agent.policy(obs))
    assert policy(obs[0]).shape == (2,)
