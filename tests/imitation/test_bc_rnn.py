"""BC-RNN-GMM (agent bc_rnn): it learns what needs a mixture or a memory, its windows stay inside episodes, its
actor resets, and it resumes, saves and refuses bad settings. Small synthetic demos, one torch thread, seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.agents.bc import BCConfig
from rlkit2.agents.bc import make_agent as make_bc
from rlkit2.agents.bc_rnn import BCRNNConfig, SequenceSampler, episode_ends, losses, make_agent
from rlkit2.core import ConfigError, DataError, EnvSpec
from rlkit2.replay import TransitionReplay

SMALL = {"rnn_dim": 32, "rnn_layers": 1, "batch_size": 32, "lr": 3e-3}
MODE = np.array([0.7, -0.5], np.float32)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def to_arrays(episodes, *, terminal_last=True):
    """Episodes [(obs (T, D), actions (T, A))] as transition arrays in episode order; each episode's last next
    observation is off its obs (as after a real step), its last row terminal when `terminal_last`."""
    obs = np.concatenate([o for o, _ in episodes]).astype(np.float32)
    nxt = np.concatenate([np.concatenate([o[1:], o[-1:] + 1.0]) for o, _ in episodes]).astype(np.float32)
    term = np.concatenate([np.eye(1, len(o), len(o) - 1)[0] * terminal_last for o, _ in episodes])
    return {"observations": obs, "actions": np.concatenate([a for _, a in episodes]).astype(np.float32),
            "rewards": np.zeros(len(obs), np.float32), "next_observations": nxt, "terminals": term.astype(np.float32)}


def bimodal(n, rng, T=8):
    """Each demo commits to +MODE or -MODE for its whole length; the observations say nothing about which."""
    out = []
    for _ in range(n):
        sign = rng.choice([-1.0, 1.0])
        out.append((rng.normal(size=(T, 3)).astype(np.float32), np.tile(sign * MODE, (T, 1))))
    return out


def memory(n, T=6):
    """A cue c = +-1 shows in the first observation only; every action of the episode is 0.6 c."""
    out = []
    for i in range(n):
        c = (-1.0, 1.0)[i % 2]
        o = np.zeros((T, 2), np.float32)
        o[0, 0], o[:, 1] = c, np.arange(T) / T
        out.append((o, np.full((T, 1), 0.6 * c, np.float32)))
    return out


def rollout(actor, episodes):
    acts = []
    for o, _ in episodes:
        actor.observe_first(o[0])
        acts.append(np.stack([actor.act(x) for x in o]))
    return acts


def train(agent, steps):
    for _ in range(steps):
        agent.learner.step()
    return agent


# ----------------------------------------------------------------------------- learning
def test_gmm_head_picks_a_mode_where_a_unimodal_head_averages_them():
    data, test = to_arrays(bimodal(40, np.random.default_rng(0))), bimodal(10, np.random.default_rng(1))

    def error(actor):  # squared distance of each action to the nearer demo mode
        a = np.concatenate(rollout(actor, test))
        return float(np.minimum(((a - MODE) ** 2).sum(-1), ((a + MODE) ** 2).sum(-1)).mean())

    errors = {}
    for k in (5, 1):
        torch.manual_seed(0)
        agent = make_agent(BCRNNConfig(num_modes=k, seq_length=4, **SMALL), EnvSpec(3, 2),
                           TransitionReplay.from_arrays(data))
        errors[f"gmm{k}"] = error(train(agent, 300).policy)
    torch.manual_seed(0)
    errors["bc"] = error(train(make_bc(BCConfig(hidden=[32, 32]), EnvSpec(3, 2), TransitionReplay.from_arrays(data)),
                               300).policy)
    # measured: gmm5 0.002, gmm1 0.40, bc (Gaussian) 0.55 (0.74 = averaging the modes to 0)
    assert errors["gmm5"] < 0.02, errors
    assert errors["gmm1"] > 0.2 and errors["bc"] > 0.2, errors


def test_recurrent_policy_remembers_a_cue_seen_steps_earlier():
    data, test = to_arrays(memory(40)), memory(2)
    errors = {}
    for seq_length, pad in ((6, True), (6, False), (1, True)):
        torch.manual_seed(0)
        agent = make_agent(BCRNNConfig(seq_length=seq_length, pad_seq_length=pad, **SMALL), EnvSpec(2, 1),
                           TransitionReplay.from_arrays(data))
        acts = rollout(train(agent, 300).policy, test)
        errors[(seq_length, pad)] = float(np.mean([np.abs(x[1:] - a[1:]).mean() for x, (_, a) in
                                                   zip(acts, test, strict=True)]))
    # measured: 0.023 (padded windows), 0.004 (full windows); seq_length=1 forgets the cue: 0.61 (one mode for both)
    assert errors[(6, True)] < 0.1 and errors[(6, False)] < 0.1, errors
    assert errors[(1, True)] > 0.4, errors


# ----------------------------------------------------------------------------- windows
def test_windows_never_cross_episode_boundaries():
    rng = np.random.default_rng(0)
    lengths = [7, 3, 12, 1, 9]
    eps = [(rng.normal(size=(T, 2)).astype(np.float32), rng.uniform(-1, 1, (T, 1)).astype(np.float32))
           for T in lengths]
    arrays = to_arrays(eps)
    arrays["terminals"][6] = 0.0  # the first episode times out: found where its next obs is not the next row's
    episode = np.repeat(np.arange(len(lengths)), lengths)
    last = np.cumsum(lengths) - 1
    np.testing.assert_array_equal(episode_ends(arrays), last[episode])
    # the arrays to_transitions makes (timeouts) and a replay's own (next_action_valid) cut episodes too
    joined = {**arrays, "next_observations": np.concatenate([arrays["observations"][1:], arrays["observations"][:1]])}
    joined["timeouts"] = np.zeros(len(episode), np.float32)
    joined["timeouts"][last] = 1.0
    np.testing.assert_array_equal(episode_ends(joined), last[episode])

    for pad in (True, False):
        sampler = SequenceSampler(episode_ends(arrays), 5, pad=pad, generator=torch.Generator().manual_seed(0))
        rows, mask = sampler.sample_indices(2000)
        rows, mask = rows.numpy(), mask.numpy().astype(bool)
        assert (episode[rows] == episode[rows[:, :1]]).all()  # one episode per window
        real = np.diff(rows, axis=1)
        assert ((real == 1) | ((real == 0) & ~mask[:, 1:])).all()  # consecutive, then the last row repeated
        assert (mask[:, :-1] >= mask[:, 1:]).all() and mask[:, 0].all()  # padding only at the end
        if pad:
            assert len(np.unique(rows[:, 0])) == len(episode)  # every row starts some window
        else:
            assert mask.all() and set(episode[rows[:, 0]]) == {0, 2, 4}  # only episodes with >= 5 steps
    with pytest.raises(DataError, match="seq_length=20"):
        SequenceSampler(episode_ends(arrays), 20, pad=False, generator=torch.Generator()).sample_indices(4)
    with pytest.raises(DataError, match="episode order"):  # a bare sampler cannot give windows
        make_agent(BCRNNConfig(), EnvSpec(2, 1), type("Sampler", (), {"sample": lambda self, n: None})())


def test_losses_on_known_answers():
    a = torch.tensor([[0.3, -0.2]])
    mean, std = torch.tensor([[[0.1, 0.0]]]), torch.tensor([[[0.5, 0.2]]])
    normal = torch.distributions.Normal(mean[:, 0], std[:, 0]).log_prob(a).sum(-1)
    torch.testing.assert_close(losses.gmm_log_prob(a, mean, std, torch.zeros(1, 1)), normal)
    # two equal components are that component; a far second one with weight w adds log(1 - w)
    two = losses.gmm_log_prob(a, mean.repeat(1, 2, 1), std.repeat(1, 2, 1), torch.tensor([[0.3, -1.0]]))
    torch.testing.assert_close(two, normal)
    far = losses.gmm_log_prob(a, torch.cat([mean, mean + 50], 1), std.repeat(1, 2, 1), torch.log(torch.tensor([[0.25,
                                                                                                              0.75]])))
    torch.testing.assert_close(far, normal + np.log(0.25))
    lp, mask = torch.tensor([[-1.0, -3.0, 100.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    assert float(losses.sequence_nll(lp, mask)) == pytest.approx(2.0)  # the padded step is left out


# ----------------------------------------------------------------------------- acting
@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_actor_resets_at_episode_start_and_every_seq_length_steps(rnn_type):
    data = to_arrays(memory(8))
    torch.manual_seed(0)
    agent = train(make_agent(BCRNNConfig(seq_length=4, rnn_type=rnn_type, **SMALL), EnvSpec(2, 1),
                             TransitionReplay.from_arrays(data)), 20)
    actor = agent.policy
    obs = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)

    def run(seq):
        actor.observe_first(seq[0])
        return np.stack([actor.act(x) for x in seq])

    full = run(obs)
    actor.act(obs[3])  # a stale state from mid-episode ...
    np.testing.assert_array_equal(run(obs[:4]), full[:4])  # ... is dropped at observe_first
    np.testing.assert_array_equal(run(obs[4:8]), full[4:8])  # step 4 starts afresh (seq_length 4) ...
    np.testing.assert_array_equal(run(obs[8:]), full[8:])
    assert not np.allclose(run(obs[1:4]), full[1:4])  # ... but within a window the state carries
    # batched observations keep one state per row
    batch = np.stack([obs[:4], obs[4:8]], axis=1)
    actor.observe_first(batch[0])
    np.testing.assert_allclose(np.stack([actor.act(x) for x in batch]), np.stack([full[:4], full[4:8]], 1), atol=1e-6)


# ----------------------------------------------------------------------------- state and files
@pytest.mark.parametrize("eval_mode", ["mode", "low_noise"])
def test_resume_and_policy_file_reproduce(tmp_path, eval_mode):
    from rlkit2 import load_policy, save_policy
    from rlkit2.registry import build_agent

    data = to_arrays(bimodal(12, np.random.default_rng(0)))
    cfg = BCRNNConfig(seq_length=4, eval_mode=eval_mode, **SMALL)

    def fresh(seed=3):
        torch.manual_seed(seed)
        return build_agent("bc_rnn", cfg, EnvSpec(3, 2), TransitionReplay.from_arrays(data, seed=seed), seed)

    straight = train(fresh(), 20)
    half = train(fresh(), 10)
    state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in half.learner.state_dict().items()}
    resumed = fresh(seed=9)  # other initial weights and streams: the state overwrites them all
    resumed.learner.load_state_dict(state)
    train(resumed, 10)
    for k, v in straight.learner.state_dict()["modules"]["policy"].items():
        torch.testing.assert_close(resumed.learner.state_dict()["modules"]["policy"][k], v, rtol=0, atol=0)

    path = save_policy(straight, tmp_path / "policy.pt")
    loaded = load_policy(path)
    episodes = bimodal(3, np.random.default_rng(5))
    for a, b in zip(rollout(straight.policy, episodes), rollout(loaded, episodes), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("override", "match"), [
    ({"rnn_type": "transformer"}, "agent.rnn_type"), ({"num_modes": 0}, "agent.num_modes"),
    ({"seq_length": 0}, "agent.seq_length"), ({"rnn_dim": -4}, "agent.rnn_dim"),
    ({"rnn_layers": 1.5}, "agent.rnn_layers"), ({"min_std": 0.0}, "agent.min_std"),
    ({"std_activation": "relu"}, "agent.std_activation"), ({"eval_mode": "sample"}, "agent.eval_mode"),
    ({"lr": 0.0}, "agent.lr"), ({"batch_size": 0}, "agent.batch_size"), ({"hidden": [0]}, "agent.hidden"),
    ({"weight_decay": -1.0}, "agent.weight_decay"), ({"obs_std_eps": -1.0}, "agent.obs_std_eps"),
])
def test_bad_settings_are_refused(override, match):
    from rlkit2 import agent_config

    with pytest.raises(ConfigError, match=match):
        BCRNNConfig(**override)
    with pytest.raises(ConfigError, match=match.removeprefix("agent.")):  # the Python API names the field too
        agent_config("bc_rnn", **override)


def test_hydra_composes_and_validates_bc_rnn():
    from rlkit2.run.common import validate_run
    from rlkit2.train import compose

    cfg = compose(["experiment=bc_rnn_lift"])
    assert cfg.agent.name == "bc_rnn" and cfg.agent.rnn_dim == 400 and cfg.agent.num_modes == 5
    assert cfg.agent.seq_length == 10 and cfg.agent.lr == 1e-4 and cfg.agent.batch_size == 100
    validate_run(cfg)
    with pytest.raises(ConfigError, match="agent.num_modes"):
        validate_run(compose(["agent=bc_rnn", "env=robosuite/lift", "agent.num_modes=0"]))


def test_validation_leaves_a_sampling_actor_where_it_was():
    """The imitation runner's validation (held-out demos, env.valid_filter_key) runs a low-noise actor, which
    samples from its own generator; afterwards the actor acts exactly as if no validation had run, so turning
    validation on moves no later evaluation."""
    from types import SimpleNamespace

    from rlkit2.data.robomimic import Demo
    from rlkit2.demo_fit import demo_action_error
    from rlkit2.run.imitation import ImitationPhase

    episodes = bimodal(6, np.random.default_rng(1))
    agent = train(make_agent(BCRNNConfig(seq_length=4, eval_mode="low_noise", **SMALL), EnvSpec(3, 2),
                             TransitionReplay.from_arrays(to_arrays(episodes))), 5)
    held = [Demo({"o": o}, a, np.zeros(len(o)), np.zeros(len(o)), name=f"demo_{i}")
            for i, (o, a) in enumerate(episodes[:2])]
    before = agent.policy.generator.get_state().clone()
    demo_action_error(agent.policy, held, ["o"])  # acting on the demos alone draws from the actor's generator
    assert not torch.equal(agent.policy.generator.get_state(), before)
    agent.policy.generator.set_state(before)
    phase = SimpleNamespace(valid_demos=held, obs_keys=["o"])
    mse = ImitationPhase._validate(phase, agent.policy)  # type: ignore[arg-type]
    assert mse > 0 and torch.equal(agent.policy.generator.get_state(), before)
