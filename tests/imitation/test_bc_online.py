"""BC fine-tuned online on its own successful episodes: the baseline that gets POIR's online budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit2.agents.bc import BCConfig, make_agent
from rlkit2.core import ConfigError
from rlkit2.registry import EnvSpec
from rlkit2.replay import TransitionReplay


def _demos(n: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Demos only in the region x0 < 0, where the expert's action is -0.5."""
    rng = np.random.default_rng(seed)
    obs = np.c_[rng.uniform(-1, 0, n), rng.normal(size=n)].astype(np.float32)
    act = np.full((n, 1), -0.5, np.float32)
    return {"observations": obs, "actions": act, "rewards": np.zeros(n, np.float32),
            "terminals": np.zeros(n, np.float32), "next_observations": obs}


def _config(**kw) -> BCConfig:
    return BCConfig(head="deterministic", hidden=[32, 32], lr=3e-3, batch_size=64, online_env_steps=100, **kw)


def test_successful_episodes_are_learned_failed_ones_ignored():
    torch.manual_seed(0)
    agent = make_agent(_config(), EnvSpec(2, 1), TransitionReplay.from_arrays(_demos(), seed=0), seed=0)
    learner = agent.learner
    assert agent.explorer is not None and agent.explorer.noise_std == pytest.approx(0.1)
    learner.attach_online(TransitionReplay(100, 2, 1))
    rng = np.random.default_rng(1)
    # a failed episode in the new region (x0 > 0) teaches nothing; a successful one, whose action there was +0.8
    bad = np.c_[rng.uniform(0, 1, 21), rng.normal(size=21)].astype(np.float32)
    metrics = learner.end_episode(bad, False, actions=np.full((20, 1), -1.0, np.float32))
    assert metrics["online/success_transitions"] == 0 and len(learner.success_obs) == 0
    good = np.c_[rng.uniform(0, 1, 41), rng.normal(size=41)].astype(np.float32)
    assert learner.end_episode(good, True, actions=np.full((40, 1), 0.8, np.float32))[
        "online/success_transitions"] == 40
    for _ in range(300):
        learner.step()
    with torch.no_grad():
        new_region = learner.policy(torch.tensor([[0.5, 0.0], [0.9, 1.0]]))
        demo_region = learner.policy(torch.tensor([[-0.5, 0.0], [-0.9, -1.0]]))
    assert torch.allclose(new_region, torch.full_like(new_region, 0.8), atol=0.1)
    assert torch.allclose(demo_region, torch.full_like(demo_region, -0.5), atol=0.1)


def test_online_batches_mix_demos_and_successes_and_resume_exactly():
    agent = make_agent(_config(online_success_fraction=0.25), EnvSpec(2, 1),
                       TransitionReplay.from_arrays(_demos(), seed=0), seed=0)
    learner = agent.learner
    learner.attach_online(TransitionReplay(100, 2, 1))
    obs = np.c_[np.full(11, 5.0), np.zeros(11)].astype(np.float32)  # marked: x0 = 5 only in successes
    learner.end_episode(obs, True, actions=np.ones((10, 1), np.float32))
    batch_obs, _ = learner._batch()
    assert int((batch_obs[:, 0] == 5.0).sum()) == 16  # 0.25 x 64
    state = learner.state_dict()
    twin = make_agent(_config(online_success_fraction=0.25), EnvSpec(2, 1),
                      TransitionReplay.from_arrays(_demos(), seed=0), seed=0).learner
    twin.load_state_dict(state)
    twin.replay.generator.set_state(learner.replay.generator.get_state())
    a, b = learner.step(), twin.step()
    assert float(a["bc_loss"]) == float(b["bc_loss"])
    torch.testing.assert_close(learner.policy.state_dict(), twin.policy.state_dict())


def test_offline_bc_has_no_explorer_and_keeps_its_checkpoint_layout():
    agent = make_agent(BCConfig(hidden=[8]), EnvSpec(2, 1), TransitionReplay.from_arrays(_demos()))
    assert agent.explorer is None
    assert "success_obs" not in agent.learner.state_dict()
    # an online checkpoint loaded into an offline learner brings no successes along
    online = make_agent(_config(), EnvSpec(2, 1), TransitionReplay.from_arrays(_demos())).learner
    online.attach_online(TransitionReplay(100, 2, 1))
    online.end_episode(np.zeros((3, 2), np.float32), True, actions=np.zeros((2, 1), np.float32))
    offline = make_agent(BCConfig(head="deterministic", hidden=[32, 32], lr=3e-3, batch_size=64), EnvSpec(2, 1),
                         TransitionReplay.from_arrays(_demos())).learner
    offline.load_state_dict(online.state_dict())
    assert not offline.online_phase and len(offline.success_obs) == 0


@pytest.mark.parametrize("override, match", [
    (dict(online_env_steps=10, online_success_fraction=1.5), "online_success_fraction"),
    (dict(online_env_steps=10, online_noise_std=-0.1), "online_noise_std"),
    (dict(online_env_steps=10, online_updates_per_episode=-1), "online_updates_per_episode"),
    (dict(online_noise_std=0.3), "online_noise_std=0.3 with agent.online_env_steps=0"),
])
def test_bad_online_settings_are_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        BCConfig(**override).validate()


def test_poir_refuses_online_settings_on_its_prior():
    from rlkit2.agents.poir import POIRConfig
    from rlkit2.agents.poir.config import POIRPriorConfig

    with pytest.raises(ConfigError, match="agent.prior.online_env_steps"):
        POIRConfig(prior=POIRPriorConfig(head="deterministic", online_env_steps=10)).validate()


def test_imitation_runner_fine_tunes_bc_online_and_resumes(tmp_path):
    pytest.importorskip("robosuite")
    from hydra import compose, initialize_config_module
    from rlkit2.envs.robosuite import RobosuiteEnvConfig

    from rlkit2 import checkpoint as ckpt
    from rlkit2.data.collect_demos import collect_demos
    from rlkit2.logging import JsonlLogger, read_metrics
    from rlkit2.run.imitation import run_imitation
    from rlkit2.train import register_schemas

    demos = tmp_path / "demos.hdf5"  # the expert needs a longer horizon than the runs below
    collect_demos(RobosuiteEnvConfig(horizon=80), demos, 2, seed=0, progress=False)
    run_dir = tmp_path / "run"
    over = ["agent=bc", "env=robosuite/lift", f"env.dataset={demos}", "env.horizon=15", "env.shift.init=0.1",
            "env.eval_nominal=false", "trainer.total_steps=10", "trainer.eval_every=100", "trainer.eval_episodes=1",
            "trainer.log_every=10", "trainer.checkpoint_every=10", "trainer.progress=false",
            "agent.hidden=[16,16]", "agent.batch_size=32", "agent.online_env_steps=30",
            "agent.online_updates_per_episode=3", "env.valid_filter_key=valid"]  # demo_1 held out
    register_schemas()
    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("config", overrides=over)
    final = run_imitation(cfg, run_dir, JsonlLogger(run_dir))
    assert "offline_eval/success_rate" in final and "eval/success_rate" in final
    # the held-out demos' error: the final value is the fine-tuned policy's, the offline one kept beside it
    valid = [r["valid/action_mse"] for r in read_metrics(run_dir) if "valid/action_mse" in r]
    assert final["valid/action_mse"] == valid[-1] and final["offline_valid/action_mse"] == valid[0] != valid[-1]
    episodes = [r for r in read_metrics(run_dir) if "online/episode_success" in r]
    assert len(episodes) == 2 and all("online/success_transitions" in r for r in episodes)
    end = ckpt.load(ckpt.checkpoint_path(run_dir / "checkpoints", 40))["learner"]
    (run_dir / "checkpoints" / "step_000000040.pt").unlink()  # resume from the end of the first episode
    with initialize_config_module("rlkit2.conf", version_base=None):
        cfg = compose("config", overrides=[*over, "resume=true"])
    resumed = run_imitation(cfg, run_dir, JsonlLogger(run_dir))
    offline = {k: v for k, v in final.items() if k.startswith("offline_")}  # the checkpoint kept them: not redone
    assert offline and {k: resumed[k] for k in offline} == offline
    again = ckpt.load(ckpt.checkpoint_path(run_dir / "checkpoints", 40))["learner"]
    for k, v in end["modules"]["policy"].items():
        torch.testing.assert_close(v, again["modules"]["policy"][k])
    # A new run started from the offline stage's checkpoint in another env (the study's fine-tuning: init_from,
    # the deployment shift) evaluates the offline policy there: the source run's numbers are not carried over.
    offline_dir = tmp_path / "offline"
    plain = [*(o for o in over if not o.startswith(("agent.online", "env.shift"))), "env.reward_shaping=true"]
    with initialize_config_module("rlkit2.conf", version_base=None):
        source = run_imitation(compose("config", overrides=plain), offline_dir, JsonlLogger(offline_dir))
    source_ckpt = ckpt.checkpoint_path(offline_dir / "checkpoints", 10)
    shifted = [*over, "env.reward_shaping=true", "env.shift.init=0.3", f"init_from={source_ckpt}"]
    with initialize_config_module("rlkit2.conf", version_base=None):
        tuned = run_imitation(compose("config", overrides=shifted), tmp_path / "tuned", JsonlLogger(tmp_path / "tuned"))
    assert tuned["offline_eval/return"] != source["eval/return"]
