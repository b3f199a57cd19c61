"""Bad configuration: unknown names list the valid ones; out-of-range values are refused before training."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import rlkit2.conf as rlkit2_conf
from hydra.errors import MissingConfigException

from rlkit2.api import agent_config as rlkit2_agent_config
from rlkit2.core import ConfigError
from rlkit2.registry import agent_names, get_agent
from rlkit2.run.common import validate_run
from rlkit2.train import run
from rlkit2.validation import ConfigWarning, check_online_memory, logical_cpus, validate_agent
from tests.helpers import cli, compose_config
from tests.robustness.common import offline_args

ONLINE = ["agent=td3", "env=hopper", "trainer.total_steps=50", "trainer.eval_episodes=1", "trainer.progress=false",
          "logger.console=false", "trainer.plot=false", "trainer.threads=1"]


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
    assert proc.returncode == 2  # a user mistake: one line, no traceback
    assert "rlkit2-train: error: agent.batch_size=5000 is larger than the dataset" in proc.stderr
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
    ("trainer.eval_episodes=-1", "trainer.eval_episodes=-1"),
    ("trainer.keep_checkpoints=0", "trainer.keep_checkpoints=0"),  # would delete every checkpoint it writes
    ("trainer.checkpoint_every=-5", "trainer.checkpoint_every=-5"),
    ("trainer.nan_policy=ignore", "trainer.nan_policy='ignore': expected 'stop' or 'skip'"),
    ("trainer.threads=-1", "trainer.threads='-1': expected 'auto' or a positive number of threads"),
    # non-finite or negative values that used to pass and fail at step 1 (or never)
    ("agent.critic_lr=nan", "agent.critic_lr=nan: learning rates must be positive and finite"),
    ("agent.actor_lr=inf", "agent.actor_lr=inf: learning rates must be positive and finite"),
    ("agent.actor_lr=-inf", "agent.actor_lr=-inf: learning rates must be positive"),
    ("agent.alpha=nan", "agent.alpha=nan: must be >= 0 and finite"),
    ("agent.alpha=-2.5", "agent.alpha=-2.5: must be >= 0"),
    ("agent.policy_noise=-0.2", "agent.policy_noise=-0.2: must be >= 0"),
    ("agent.tau=nan", "agent.tau=nan: the target-update rate must lie in"),
    ("trainer.learning_starts=-1", "trainer.learning_starts=-1: must be >= 0"),
    ("env.max_episode_steps=0", "env.max_episode_steps=0: must be a positive number of steps"),
    ("env.max_episode_steps=-5", "env.max_episode_steps=-5: must be a positive number of steps"),
    ("seed=-1", "seed=-1: seeds must be integers >= 0"),
])
def test_out_of_range_values_are_refused_before_training(tmp_path, hopper_file, override, pattern):
    cfg = compose_config(offline_args(hopper_file, "trainer.total_steps=50", "trainer.checkpoint_every=1", override))
    with pytest.raises(ConfigError, match=pattern):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_huge_online_batch_is_refused_before_any_allocation(tmp_path):
    # used to allocate 5.3 GB, then fail inside torch
    cfg = compose_config([*ONLINE, "agent.batch_size=100000000"])
    with pytest.raises(ConfigError, match="agent.batch_size=100000000 is larger than agent.replay_capacity=1000000"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_online_batch_and_replay_that_cannot_fit_in_memory_are_refused(tmp_path):
    from rlkit2.agents.td3.config import TD3Config

    cfg = TD3Config(batch_size=10_000_000, replay_capacity=10**9)  # within its replay: only memory can refuse it
    row = 4 * (2 * 11 + 3 + 2)  # Hopper: 11-dim observations, 3-dim actions, float32
    with pytest.raises(ConfigError, match=r"agent.batch_size=10000000: one sampled batch needs 1.0 GiB .*more than"):
        check_online_memory(cfg, 11, 3, 1000, available=10_000_000 * row - 1)
    with pytest.raises(ConfigError, match=r"agent.replay_capacity=1000000: the replay of 1000000 transitions needs"):
        check_online_memory(TD3Config(), 11, 3, 1_000_000, available=1_000_000 * row - 1)
    check_online_memory(cfg, 11, 3, 1000, available=10_000_000 * row)  # fits exactly: accepted
    # end to end: the trainer checks before it allocates the replay (a 1e10 batch is ~1 TB of float32)
    cfg = compose_config([*ONLINE, "agent.batch_size=10000000000", "agent.replay_capacity=100000000000"])
    with pytest.raises(ConfigError, match="agent.batch_size=10000000000: one sampled batch needs"):
        run(cfg, tmp_path / "run")


def test_threads_above_the_cpu_count_warn_but_run(hopper_file):
    cpus = logical_cpus()
    cfg = compose_config(offline_args(hopper_file, f"trainer.threads={cpus + 1}"))
    with pytest.warns(ConfigWarning, match=f"trainer.threads={cpus + 1} is more than the {cpus} logical CPUs.*"
                                           "oversubscribe"):
        validate_run(cfg)  # what rlkit2.train.run calls first
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_run(compose_config(offline_args(hopper_file, f"trainer.threads={cpus}")))


def test_python_api_refuses_the_same_values():
    import rlkit2
    from rlkit2.agents.td3_bc.config import TD3BCConfig
    from rlkit2.core import EnvSpec

    with pytest.raises(ConfigError, match="agent.actor_lr=inf: learning rates must be positive and finite"):
        rlkit2.make("td3", EnvSpec(3, 2), actor_lr=float("inf"))
    with pytest.raises(ConfigError, match="agent.batch_size=100000000 is larger than agent.replay_capacity"):
        rlkit2.make("sac", EnvSpec(3, 2), batch_size=100_000_000)
    with pytest.raises(ConfigError, match="agent.alpha=-1.0"):
        TD3BCConfig(alpha=-1.0)
    with pytest.raises(ConfigError, match="agent.expectile=1.0: an expectile must lie in \\(0, 1\\)"):
        rlkit2.agent_config("iql", expectile=1.0)
    with pytest.raises(ConfigError, match="agent.prior.lr=-1.0: learning rates"):  # nested configs by their path
        rlkit2.agent_config("poir", prior={"lr": -1.0})
    with pytest.raises(ConfigError, match="agent.generation.temperature=0.0: must be positive"):
        rlkit2.agent_config("ppo_lm", generation={"temperature": 0.0})
    with pytest.raises(ConfigError, match="agent.n=1: must be >= 2"):
        rlkit2.agent_config("jbond", n=1)


@pytest.mark.parametrize("name", agent_names())
def test_every_registered_agents_defaults_pass(name):
    entry = get_agent(name)
    validate_agent(entry.config_cls())  # the dataclass's own check ran on construction, too
    validate_agent(rlkit2_agent_config(name))


def test_every_agent_and_experiment_preset_passes_as_composed():
    from hydra import compose, initialize_config_module

    from rlkit2.train import register_schemas

    register_schemas()
    presets = [f"agent={name}" for name in agent_names()]
    presets += [f"experiment={p.stem}" for p in sorted(Path(rlkit2_conf.__file__).parent.glob("experiment/*.yaml"))]
    assert len(presets) > len(agent_names())
    with initialize_config_module(config_module="rlkit2.conf", version_base="1.3"):
        for preset in presets:
            validate_run(compose(config_name="config", overrides=[preset]))


def test_iql_ranges_are_checked_too(tmp_path, hopper_file):
    cfg = compose_config([*offline_args(hopper_file, "trainer.total_steps=50"), "agent=iql", "agent.gamma=-0.1"])
    with pytest.raises(ConfigError, match="agent.gamma=-0.1"):
        run(cfg, tmp_path / "run")


def test_resume_with_another_architecture_names_the_changed_option(tmp_path, hopper_file):
    base = offline_args(hopper_file, "trainer.total_steps=20", "trainer.checkpoint_every=10", "trainer.eval_every=20")
    run(compose_config(base), tmp_path / "run")
    with pytest.raises(ConfigError, match=r"cannot change mid-run:\n  agent.hidden: run \[32, 32\], now \[64, 64\]"):
        run(compose_config([*base, "trainer.total_steps=40", "resume=true", "agent.hidden=[64,64]"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="agent.name: run 'td3_bc', now 'iql'"):
        run(compose_config([*base, "trainer.total_steps=40", "resume=true", "agent=iql"]), tmp_path / "run")
    # a run dir without the saved config (older rlkit2): the checkpoint's own check names the option
    (tmp_path / "run" / ".hydra" / "config.yaml").unlink()
    with pytest.raises(ConfigError, match=r"step_000000020.pt: .*agent.hidden: checkpoint \[32, 32\], now \[64, 64\]"):
        run(compose_config([*base, "trainer.total_steps=40", "resume=true", "agent.hidden=[64,64]"]), tmp_path / "run")


def test_rlhf_runner_refuses_out_of_range_values_before_training(tmp_path):
    from tests.robustness.common import lm_args

    for override, pattern in (("agent.lr=-1e-4", "agent.lr=-0.0001: learning rates must be positive"),
                              ("trainer.nan_policy=ignore", "trainer.nan_policy='ignore'")):
        with pytest.raises(ConfigError, match=pattern):
            run(compose_config(lm_args("trainer.total_steps=2", override)), tmp_path / "run")
        assert not (tmp_path / "run" / "checkpoints").exists()
