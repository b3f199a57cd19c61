"""BC learns from a handful of scripted Lift demos; its runner trains, evaluates, checkpoints and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.agents.bc import BCConfig, make_agent
from rlkit2.core import ConfigError, evaluate
from rlkit2.registry import EnvSpec
from rlkit2.replay import TransitionReplay

pytest.importorskip("robosuite")


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    from rlkit2.envs.robosuite import RobosuiteEnvConfig

    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.data.robomimic import read_robomimic, to_transitions

    path = tmp_path_factory.mktemp("demos") / "lift.hdf5"
    cfg = RobosuiteEnvConfig(horizon=80)
    collect_demos(cfg, path, 12, seed=0, progress=False)
    ds = read_robomimic(path, obs_keys=cfg.obs_keys)
    return path, to_transitions(ds.demos[:10], cfg.obs_keys), to_transitions(ds.demos[10:], cfg.obs_keys)


@pytest.mark.parametrize("head", ["deterministic", "gaussian"])
def test_bc_fits_demo_actions(demos, head):
    torch.manual_seed(0)
    _, train, held_out = demos
    agent = make_agent(BCConfig(head=head, hidden=[128, 128]), EnvSpec(19, 7), TransitionReplay.from_arrays(train))
    obs, act = torch.as_tensor(held_out["observations"]), torch.as_tensor(held_out["actions"])

    def held_out_mse():
        with torch.no_grad():
            return float(((agent.learner.policy(obs) - act) ** 2).sum(-1).mean())

    before = held_out_mse()
    for _ in range(600):
        agent.learner.step()
    after = held_out_mse()
    # Generalises to unseen demos: far below the untrained net and below predicting the mean action.
    assert after < 0.25 * before
    assert after < 0.5 * float(((act - act.mean(0)) ** 2).sum(-1).mean())
    # The actor speaks numpy, one observation at a time.
    a = agent.policy.act(held_out["observations"][0])
    assert a.shape == (7,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)


def test_bad_head_is_refused(demos):
    with pytest.raises(ConfigError, match="agent.head='mixture'"):
        make_agent(BCConfig(head="mixture"), EnvSpec(19, 7), TransitionReplay.from_arrays(demos[1]))


@pytest.mark.slow
def test_bc_succeeds_in_nominal_lift(demos):
    from rlkit2.envs.robosuite import RobosuiteEnvConfig, make_robosuite_env

    torch.manual_seed(0)
    agent = make_agent(BCConfig(head="deterministic"), EnvSpec(19, 7), TransitionReplay.from_arrays(demos[1]))
    for _ in range(3000):
        agent.learner.step()
    env = make_robosuite_env(RobosuiteEnvConfig(horizon=100), seed=0)
    assert evaluate(env, agent.policy, 10, seed=123)["eval/success_rate"] >= 0.5


def _compose(overrides):
    from hydra import compose, initialize_config_module

    from rlkit2.train import register_schemas

    register_schemas()
    with initialize_config_module("rlkit2.conf", version_base=None):
        return compose("config", overrides=overrides)


def test_imitation_runner_trains_evaluates_and_resumes(demos, tmp_path):
    from rlkit2.logging import JsonlLogger, read_metrics
    from rlkit2.run.imitation import run_imitation

    path = demos[0]
    over = ["agent=bc", "env=robosuite/lift", f"env.dataset={path}", "env.num_demos=10", "env.horizon=30",
            "env.shift.init=0.1", "trainer.total_steps=40", "trainer.eval_every=40", "trainer.eval_episodes=1",
            "trainer.log_every=20", "trainer.checkpoint_every=20", "trainer.progress=false",
            "agent.hidden=[32,32]", "agent.batch_size=64"]
    final = run_imitation(_compose(over), tmp_path, JsonlLogger(tmp_path))
    assert {"eval/success_rate", "eval_nominal/success_rate"} <= set(final)
    rows = read_metrics(tmp_path)
    assert any("train/bc_loss" in r for r in rows) and rows[-1]["step"] == 40
    # Resume from the step-20 checkpoint reproduces the uninterrupted weights at step 40.
    from rlkit2 import checkpoint as ckpt

    end = ckpt.load(ckpt.checkpoint_path(tmp_path / "checkpoints", 40))["learner"]
    (tmp_path / "checkpoints" / "step_000000040.pt").unlink()
    run_imitation(_compose(over + ["resume=true"]), tmp_path, JsonlLogger(tmp_path))
    again = ckpt.load(ckpt.checkpoint_path(tmp_path / "checkpoints", 40))["learner"]
    for k, v in end["modules"]["policy"].items():
        torch.testing.assert_close(v, again["modules"]["policy"][k])


def test_held_out_demos_validate_the_policy(demos, tmp_path, capsys, caplog):
    """env.valid_filter_key (robomimic's `valid` mask, which scripted demo files carry: the last 10 %): those
    demos are not trained on, and each evaluation logs the policy's open-loop action error on them, which falls
    as BC learns; trainer.keep_best on it keeps the lowest; a mask the file lacks is refused, naming it."""
    import json
    import logging

    from rlkit2.core import DataError
    from rlkit2.logging import JsonlLogger, read_metrics
    from rlkit2.run.imitation import run_imitation

    caplog.set_level(logging.INFO)
    over = ["agent=bc", "env=robosuite/lift", f"env.dataset={demos[0]}", "env.valid_filter_key=valid",
            "env.horizon=20", "trainer.total_steps=300", "trainer.eval_every=20", "trainer.eval_episodes=1",
            "trainer.log_every=100", "trainer.progress=false", "agent.hidden=[64,64]", "agent.batch_size=64",
            "trainer.keep_best=valid/action_mse"]
    run = tmp_path / "run"
    final = run_imitation(_compose(over), run, JsonlLogger(run))
    mse = [r["valid/action_mse"] for r in read_metrics(run) if "valid/action_mse" in r]
    assert len(mse) == 15 and final["valid/action_mse"] == mse[-1]
    assert mse[-1] < 0.5 * mse[0]
    best = json.loads((run / "best.json").read_text())  # an error: the best policy is the lowest one's
    assert best["value"] == min(mse) and best["step"] == 20 * (1 + mse.index(min(mse)))
    out = capsys.readouterr().out + caplog.text  # `say` prints, or logs where a handler is installed
    assert "11 demos" in out and "; 1 held out (env.valid_filter_key)" in out
    with pytest.raises(DataError, match="mask 'holdout' .* not in mask/"):
        run_imitation(_compose([*over, "env.valid_filter_key=holdout"]), tmp_path / "r2", JsonlLogger(tmp_path))
    with pytest.raises(ConfigError, match="validates at every evaluation, but evaluation is off"):
        run_imitation(_compose([*over[:-1], "trainer.eval_episodes=0"]), tmp_path / "r3", JsonlLogger(tmp_path))
    with pytest.raises(ConfigError, match="keep_best=valid/action_mse needs held-out demos"):
        run_imitation(_compose([*over, "env.valid_filter_key="]), tmp_path / "r4", JsonlLogger(tmp_path))


def test_obs_dims_restrict_what_the_policy_sees():
    rng = np.random.default_rng(0)
    n = 64
    data = {"observations": rng.normal(size=(n, 5)).astype(np.float32), "actions": rng.uniform(-1, 1, (n, 2)).astype(
        np.float32), "rewards": np.zeros(n, np.float32), "terminals": np.zeros(n, np.float32)}
    data["next_observations"] = data["observations"]
    agent = make_agent(BCConfig(head="deterministic", hidden=[16], obs_dims=[1, 3]), EnvSpec(5, 2),
                       TransitionReplay.from_arrays(data))
    agent.learner.step()
    obs = torch.as_tensor(data["observations"][:4])
    changed = obs.clone()
    changed[:, [0, 2, 4]] += 10.0
    torch.testing.assert_close(agent.learner.policy(changed), agent.learner.policy(obs))
    assert agent.learner.policy.normalizer.mean.shape == (2,)
    with pytest.raises(ConfigError, match="obs_dims"):
        make_agent(BCConfig(obs_dims=[1, 7]), EnvSpec(5, 2), TransitionReplay.from_arrays(data))
