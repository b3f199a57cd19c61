"""Bad configuration: unknown names list the valid ones; out-of-range values are refused before training."""

from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException

from rlkit2.core import ConfigError
from rlkit2.train import run
from tests.helpers import cli, compose_config
from tests.robustness.common import offline_args


@pytest.mark.parametrize("group, name, valid", [
    ("env", "hoper", ["hopper", "halfcheetah", "walker2d", "text_jsonl"]),
    ("agent", "td3bc", ["td3_bc", "iql", "qsarsa_ac2", "bc", "ppo_lm"]),
    ("experiment", "qsarsa_hopper", ["qsarsa_ac2_hopper_medium"]),
])
def test_unknown_config_name_lists_the_valid_ones(group, name, valid):
    with pytest.raises(MissingConfigException) as info:
        compose_config([f"{group}={name}"])
    msg = str(info.value)
    assert f"'{group}/{name}'" in msg and f"Available options in '{group}'" in msg
    assert all(v in msg for v in valid), msg


def test_batch_larger_than_the_dataset_is_refused_by_rlkit2_train(tmp_path, hopper_file):
    run_dir = tmp_path / "run"
    proc = cli([*offline_args(hopper_file, "agent.batch_size=5000", "trainer.total_steps=100",
                              "trainer.checkpoint_every=1"), f"hydra.run.dir={run_dir}"], tmp_path, check=False)
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr and "agent.batch_size=5000 is larger than the dataset" in proc.stderr
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text().strip()


@pytest.mark.parametrize("override, pattern", [
    ("agent.critic_lr=-3e-4", "agent.critic_lr=-0.0003: learning rates must be positive"),
    ("agent.actor_lr=0", "agent.actor_lr=0.0: learning rates must be positive"),
    ("agent.batch_size=0", "agent.batch_size=0: must be positive"),
    ("agent.gamma=1.5", r"agent.gamma=1.5: a discount must lie in \[0, 1\]"),
    ("agent.tau=-1", r"agent.tau=-1.0: the target-update rate"),
    ("agent.policy_freq=0", "agent.policy_freq=0: must be a positive"),
    ("agent.hidden=[64,0]", r"agent.hidden=\[64, 0\]: layer widths"),
    ("trainer.total_steps=0", "trainer.total_steps=0"),
    ("trainer.eval_episodes=0", "trainer.eval_episodes=0"),
    ("trainer.keep_checkpoints=0", "trainer.keep_checkpoints=0"),  # would delete every checkpoint it writes
    ("trainer.checkpoint_every=-5", "trainer.checkpoint_every=-5"),
    ("trainer.nan_policy=ignore", "trainer.nan_policy='ignore': expected 'stop' or 'skip'"),
    ("trainer.threads=-1", "trainer.threads=-1"),
])
def test_out_of_range_values_are_refused_before_training(tmp_path, hopper_file, override, pattern):
    cfg = compose_config(offline_args(hopper_file, "trainer.total_steps=50", "trainer.checkpoint_every=1", override))
    with pytest.raises(ConfigError, match=pattern):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_iql_ranges_are_checked_too(tmp_path, hopper_file):
    cfg = compose_config([*offline_args(hopper_file, "trainer.total_steps=50"), "agent=iql", "agent.gamma=-0.1"])
    with pytest.raises(ConfigError, match="agent.gamma=-0.1"):
        run(cfg, tmp_path / "run")


def test_resume_with_another_architecture_names_the_changed_option(tmp_path, hopper_file):
    base = offline_args(hopper_file, "trainer.total_steps=20", "trainer.checkpoint_every=10", "trainer.eval_every=20")
    run(compose_config(base), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"step_000000020.pt: .*agent.hidden: checkpoint \[32, 32\], now \[64, 64\]"):
        run(compose_config([*base, "trainer.total_steps=40", "resume=true", "agent.hidden=[64,64]"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="checkpoint is for agent 'td3_bc', not 'iql'"):
        run(compose_config([*base, "trainer.total_steps=40", "resume=true", "agent=iql"]), tmp_path / "run")


def test_rlhf_runner_refuses_out_of_range_values_before_training(tmp_path):
    from tests.robustness.common import lm_args

    for override, pattern in (("agent.lr=-1e-4", "agent.lr=-0.0001: learning rates must be positive"),
                              ("trainer.nan_policy=ignore", "trainer.nan_policy='ignore'")):
        with pytest.raises(ConfigError, match=pattern):
            run(compose_config(lm_args("trainer.total_steps=2", override)), tmp_path / "run")
        assert not (tmp_path / "run" / "checkpoints").exists()
