"""POIR: score and MPPI weights, dynamics ensemble, return-to-distribution planning, online fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.agents.poir import POIRConfig, make_agent
from rlkit2.agents.poir.arms import ArmStats
from rlkit2.agents.poir.losses import knn_sq_distance, mppi_weights
from rlkit2.core import ConfigError
from rlkit2.registry import EnvSpec
from rlkit2.replay import TransitionReplay


def point_mass_demos(n_traj: int = 20, T: int = 30, seed: int = 0, drift: float = 0.0) -> dict[str, np.ndarray]:
    """2-D point mass s' = s + 0.1 a (+ drift in y). The expert moves along +x and keeps y near 0."""
    r = np.random.default_rng(seed)
    obs, act, nxt = [], [], []
    for _ in range(n_traj):
        s = np.array([0.0, r.normal(0, 0.05)])
        for _ in range(T):
            a = np.clip([1.0, -3.0 * s[1] + r.normal(0, 0.5)], -1, 1)
            s2 = s + 0.1 * a + np.array([0.0, drift])
            obs.append(s), act.append(a), nxt.append(s2)
            s = s2
    n = len(obs)
    return {"observations": np.array(obs, np.float32), "actions": np.array(act, np.float32),
            "next_observations": np.array(nxt, np.float32), "rewards": np.zeros(n, np.float32),
            "terminals": np.zeros(n, np.float32)}


def toy_agent(**kw):
    torch.manual_seed(0)
    kw = {"noise_std": 0.5, **kw}
    cfg = POIRConfig(batch_size=64, ensemble_size=3, model_hidden=[64, 64], horizon=6, num_samples=64,
                     temperature=0.2, **kw)
    cfg.prior.hidden = [64, 64]
    return make_agent(cfg, EnvSpec(2, 2), TransitionReplay.from_arrays(point_mass_demos()), seed=0)


def test_knn_distance_and_mppi_weights():
    x, ref = torch.randn(7, 3), torch.randn(11, 3)
    brute = ((x[:, None] - ref[None]) ** 2).mean(-1)
    torch.testing.assert_close(knn_sq_distance(x, ref, 1), brute.min(-1).values, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(knn_sq_distance(x, ref, 3), brute.sort(-1).values[:, :3].mean(-1), rtol=1e-4,
                               atol=1e-5)
    w = mppi_weights(torch.tensor([0.0, 1.0, 2.0]), temperature=0.5)
    assert float(w.sum()) == pytest.approx(1.0) and w.argmax() == 2 and bool((w.diff() > 0).all())


def test_dynamics_ensemble_learns_the_point_mass():
    agent = toy_agent()
    lr = agent.learner
    first = float(lr.step()["model_loss"])
    for _ in range(400):
        m = lr.step()
    assert float(m["model_loss"]) < 0.1 * first
    s, a = torch.tensor([[1.0, 0.05]]), torch.tensor([[1.0, -0.5]])
    nxt, disagreement = lr.predict(s, a)
    torch.testing.assert_close(nxt, s + 0.1 * a, atol=0.02, rtol=0)
    # Far outside the data the members disagree more than in it.
    assert float(lr.predict(torch.tensor([[0.5, 3.0]]), a)[1]) > float(disagreement)


def drift_after_planning(agent) -> float:
    """Train 400 steps, swap in a y-blind prior (what BC does off its data), plan 15 steps from (0.5, 0.6):
    |y| at the end, the distance left to the expert's states at y ~ 0."""
    for _ in range(400):
        agent.learner.step()
    agent.learner.prior = lambda s: torch.tensor([1.0, 0.0]).expand(s.shape[0], 2)
    s = np.array([0.5, 0.6], np.float32)
    for _ in range(15):
        s = s + 0.1 * agent.policy.act(s)
    return abs(float(s[1]))


def test_planner_brings_a_drifting_agent_back_to_expert_states():
    agent = toy_agent()
    # A prior that ignores y (what BC does off its data): alone it never comes back.
    assert drift_after_planning(agent) < 0.25  # pulled back toward y ~ 0, where the expert was
    assert agent.policy.latency_ms()["act_ms"] > 0 and agent.policy.latency_ms()["planned_fraction"] == 1.0


def test_expert_proposals_return_where_prior_and_noise_cannot():
    """With almost no proposal noise a y-blind prior stays off; the nearest demo state's action brings it back."""
    ends = {}
    for frac in (0.0, 0.5):
        ends[frac] = drift_after_planning(toy_agent(noise_std=0.01, expert_proposals=frac))
    assert ends[0.0] > 0.5 and ends[0.5] < 0.3


def test_expert_action_is_the_nearest_demo_states_action():
    agent = toy_agent()
    lr = agent.learner
    data = lr.replay.arrays()
    obs = torch.as_tensor(data["observations"][[3, 40, 100]])
    torch.testing.assert_close(lr.expert_action(obs), torch.as_tensor(data["actions"][[3, 40, 100]]))


def test_gating_plans_only_off_distribution():
    agent = toy_agent(gate_quantile=0.95)
    assert agent.learner.in_distribution(torch.tensor([[1.0, 0.0]]))
    assert not agent.learner.in_distribution(torch.tensor([[1.0, 1.5]]))


def test_online_fine_tuning_adapts_model_and_score():
    agent = toy_agent(score_add_successful=True)
    lr = agent.learner
    for _ in range(300):
        lr.step()
    shifted = point_mass_demos(10, seed=1, drift=0.05)  # deployment dynamics: a drift in y
    s, a = torch.as_tensor(shifted["observations"]), torch.as_tensor(shifted["actions"])
    true_next = torch.as_tensor(shifted["next_observations"])
    err_before = float((lr.predict(s, a)[0] - true_next).abs().mean())
    online = TransitionReplay.from_arrays(shifted)
    lr.attach_online(online)
    n_ref = len(lr.reference)
    lr.end_episode(shifted["observations"][:30], success=True)
    lr.end_episode(shifted["observations"][30:60], success=False)
    assert len(lr.reference) == n_ref + 30  # only the successful episode's states join the reference
    prior_before = [p.clone() for p in lr.bc.policy.parameters()]
    for _ in range(300):
        lr.step()
    err_after = float((lr.predict(s, a)[0] - true_next).abs().mean())
    assert err_after < 0.5 * err_before
    assert all(torch.equal(p, q) for p, q in zip(prior_before, lr.bc.policy.parameters(), strict=True))
    # The checkpointed state restores the grown reference set and the model.
    state = lr.state_dict()
    fresh = toy_agent().learner
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.reference, lr.reference)
    torch.testing.assert_close(fresh.predict(s, a)[0], lr.predict(s, a)[0])


def test_score_reference_stays_the_demos_by_default():
    lr = toy_agent().learner
    demo_reference = lr.reference.clone()
    shifted = point_mass_demos(2, seed=1, drift=0.05)
    lr.end_episode(shifted["observations"][:30], success=True)
    torch.testing.assert_close(lr.reference, demo_reference)  # off-demo states never become 'expert-visited'


def test_successful_online_episodes_become_proposals_and_train_the_prior():
    agent = toy_agent(prior_online_fraction=0.5, proposals_add_successful=True)
    lr = agent.learner
    for _ in range(50):
        lr.step()
    online = point_mass_demos(2, seed=2)
    obs, act = online["observations"][:31], online["actions"][:30]
    n_prop = len(lr.demo_actions)
    with pytest.raises(ValueError, match="one fewer"):
        lr.end_episode(obs, success=True, actions=act[:10])
    lr.end_episode(obs, success=False, actions=act)
    assert len(lr.demo_actions) == n_prop and len(lr.success_obs) == 0
    prior_before = [p.clone() for p in lr.bc.policy.parameters()]
    lr.step()  # online phase, no success yet: the prior stays frozen
    assert all(torch.equal(p, q) for p, q in zip(prior_before, lr.bc.policy.parameters(), strict=True))
    lr.end_episode(obs, success=True, actions=act)
    assert len(lr.demo_actions) == n_prop + 30 and len(lr.success_obs) == 30
    torch.testing.assert_close(lr.expert_action(torch.as_tensor(obs[5:6])), torch.as_tensor(act[5:6]))
    assert "prior_online_loss" in lr.step()
    assert not all(torch.equal(p, q) for p, q in zip(prior_before, lr.bc.policy.parameters(), strict=True))
    fresh = toy_agent(prior_online_fraction=0.5, proposals_add_successful=True).learner
    fresh.load_state_dict(lr.state_dict())
    torch.testing.assert_close(fresh.demo_actions, lr.demo_actions)
    torch.testing.assert_close(fresh.success_obs, lr.success_obs)


def test_binary_action_dims_are_snapped_when_online_actions_join():
    demos = point_mass_demos()
    demos["actions"][:, 0] = np.where(demos["actions"][:, 0] >= 0, 1.0, -1.0)  # dim 0 binary, like a gripper
    for snap in (True, False):
        cfg = POIRConfig(batch_size=64, ensemble_size=2, model_hidden=[16], snap_binary_actions=snap,
                         proposals_add_successful=True)
        lr = make_agent(cfg, EnvSpec(2, 2), TransitionReplay.from_arrays(demos), seed=0).learner
        assert lr.binary_dims.tolist() == [True, False]
        act = np.array([[0.3, 0.3], [-0.2, -0.2]], np.float32)
        lr.end_episode(demos["observations"][:3], success=True, actions=act)
        expected = [[1.0, 0.3], [-1.0, -0.2]] if snap else act.tolist()
        torch.testing.assert_close(lr.success_act, torch.tensor(expected))
        torch.testing.assert_close(lr.demo_actions[-2:], torch.tensor(expected))


def test_thompson_sampling_finds_and_deploys_the_best_arm():
    stats, rng = ArmStats(3), np.random.default_rng(0)
    assert stats.best() == 0  # before any episode: the configured planner
    p_success = [0.3, 0.8, 0.5]
    for _ in range(150):
        arm = stats.sample(rng)
        stats.update(arm, rng.uniform() < p_success[arm])
    assert stats.best() == 1 and stats.trials[1] > 0.6 * 150
    # One lucky episode of a rarely played arm does not win deployment: the most-played arm does.
    stats.update(2, True)
    assert stats.best() == 1
    restored = ArmStats(3)
    restored.load_state_dict(stats.state_dict())
    assert restored.best() == 1 and np.array_equal(restored.trials, stats.trials)
    with pytest.raises(ConfigError, match="planner arms"):
        ArmStats(2).load_state_dict(stats.state_dict())
    # An offline checkpoint has played no arm: online fine-tuning may list other arms than it did.
    fresh = ArmStats(2)
    fresh.load_state_dict(ArmStats(4).state_dict())
    assert len(fresh) == 2 and fresh.best() == 0


def test_planner_arms_are_validated_and_the_prior_arm_acts_like_bc():
    with pytest.raises(ConfigError, match="unknown key.*horizn"):
        toy_agent(planner_arms=[{}, {"horizn": 3}])
    with pytest.raises(ConfigError, match="expert_proposals"):
        toy_agent(planner_arms=[{"expert_proposals": 2.0}])
    agent = toy_agent(planner_arms=[{"plan": False}, {"horizon": 2, "num_samples": 8}])
    lr = agent.learner
    assert [a.plan for a in lr.arms] == [False, True] and lr.arms[1].horizon == 2 and lr.arms[1].noise_std == 0.5
    s = np.array([0.5, 0.3], np.float32)
    # Arm 0 is deployed before any online episode: exactly the prior's action, no planning.
    np.testing.assert_array_equal(agent.policy.act(s), lr.prior(torch.as_tensor(s)[None])[0].detach().numpy())
    assert agent.policy.latency_ms()["planned_fraction"] == 0.0


def test_online_arm_selection_credits_episodes_and_resumes():
    """The explorer draws an arm per episode and the learner credits it; a checkpoint restores the statistics
    and the explorer's draws; the deployed policy switches to the arm that won."""
    agent = toy_agent(planner_arms=[{"plan": False}, {"horizon": 2, "num_samples": 8}])
    lr, explorer = agent.learner, agent.explorer
    obs = point_mass_demos(1)["observations"][:5]
    arms = []
    for _ in range(12):
        explorer.observe_first(obs[0])
        arms.append(lr.active_arm)
        metrics = lr.end_episode(obs, success=lr.active_arm == 1)  # only planning succeeds here
    assert metrics["online/arm"] == arms[-1] and metrics["online/arm1_episodes"] == lr.arm_stats.trials[1]
    assert lr.arm_stats.trials.sum() == 12 and lr.arm_stats.successes[0] == 0
    assert agent.policy.act(obs[0]) is not None and agent.policy.current_arm() == lr.arm_stats.best() == 1
    fresh = toy_agent(planner_arms=[{"plan": False}, {"horizon": 2, "num_samples": 8}])
    fresh.learner.load_state_dict(lr.state_dict())
    fresh.explorer.load_state_dict(explorer.state_dict())
    np.testing.assert_array_equal(fresh.learner.arm_stats.trials, lr.arm_stats.trials)
    for _ in range(5):
        explorer.observe_first(obs[0])
        fresh.explorer.observe_first(obs[0])
        assert fresh.learner.active_arm == lr.active_arm


def test_bad_score_dims_are_refused():
    with pytest.raises(ConfigError, match="score_dims"):
        toy_agent(score_dims=[0, 5])


@pytest.mark.slow
def test_poir_runner_offline_then_online(tmp_path):
    pytest.importorskip("robosuite")
    from hydra import compose, initialize_config_module
    from rlkit2.envs.robosuite import RobosuiteEnvConfig

    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.logging import JsonlLogger, read_metrics
    from rlkit2.run.imitation import run_imitation
    from rlkit2.train import register_schemas

    collect_demos(RobosuiteEnvConfig(horizon=60), tmp_path / "d.hdf5", 3, seed=0, progress=False)
    register_schemas()
    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("config", overrides=[
            "agent=poir", "env=robosuite/lift", f"env.dataset={tmp_path / 'd.hdf5'}", "env.horizon=12",
            "env.shift.action_noise=0.1", "trainer.total_steps=20", "trainer.eval_every=1000",
            "trainer.eval_episodes=1", "trainer.log_every=10", "trainer.progress=false", "agent.batch_size=32",
            "agent.prior.batch_size=32", "agent.num_samples=16", "agent.horizon=3", "agent.online_env_steps=24",
            "agent.online_updates_per_episode=5"])
    final = run_imitation(cfg, tmp_path / "run", JsonlLogger(tmp_path / "run"))
    assert {"eval/success_rate", "offline_eval/success_rate", "eval/act_ms", "eval_nominal/success_rate"} <= set(final)
    rows = read_metrics(tmp_path / "run")
    assert sum("online/episode_success" in r for r in rows) == 2  # two 12-step episodes
    assert rows[-1]["step"] == 20 + 24
