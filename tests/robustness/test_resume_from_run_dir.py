"""Resume from the run dir alone: the saved config is the source of truth, safe settings may change, anything
else is refused with the differences, and a refused attempt changes nothing on disk."""

from __future__ import annotations

import pytest

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import offline_args


def _first_run(tmp_path, hopper_file):
    overrides = offline_args(hopper_file, "agent.alpha=1.5", "trainer.total_steps=20", "trainer.checkpoint_every=10",
                             "trainer.eval_every=10", "trainer.log_every=10", "seed=4")
    run(compose_config(overrides), tmp_path / "run", overrides)
    return tmp_path / "run"


def _snapshot(d):
    return {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".rlkit2.lock"}


def test_resume_needs_no_override_retyped(tmp_path, hopper_file):
    run_dir = _first_run(tmp_path, hopper_file)
    overrides = ["resume=true", "trainer.total_steps=40"]  # what a user types: no agent=, no env.dataset=
    final = run(compose_config(overrides), run_dir, overrides)
    state = ckpt.latest_valid(run_dir / "checkpoints")[1]
    assert state["step"] == 40 and state["config"]["agent"]["name"] == "td3_bc"
    assert state["config"]["agent"]["alpha"] == 1.5 and state["config"]["seed"] == 4  # the saved values
    assert "eval/return" in final
    assert [r["step"] for r in read_metrics(run_dir) if "eval/return" in r] == [10, 20, 30, 40]


def test_a_refused_resume_lists_the_differences_and_writes_nothing(tmp_path, hopper_file):
    run_dir = _first_run(tmp_path, hopper_file)
    before = _snapshot(run_dir)
    overrides = ["resume=true", "agent.tau=0.01", "seed=5"]  # keys the default agent (sac) has too
    with pytest.raises(ConfigError, match=r"agent.tau: run 0.005, now 0.01\n  seed: run 4, now 5"):
        run(compose_config(overrides), run_dir, overrides)
    assert _snapshot(run_dir) == before  # .hydra/config.yaml included


def test_resume_from_another_run_dir_uses_that_runs_config(tmp_path, hopper_file):
    src = _first_run(tmp_path, hopper_file)
    overrides = [f"resume={src}", "trainer.total_steps=30"]
    run(compose_config(overrides), tmp_path / "copy", overrides)
    state = ckpt.latest_valid(tmp_path / "copy" / "checkpoints")[1]
    assert state["step"] == 30 and state["config"]["agent"]["alpha"] == 1.5


@pytest.mark.parametrize("off", ["trainer.eval_every=0", "trainer.eval_episodes=0"])
def test_evaluation_can_be_switched_off(tmp_path, hopper_file, off):
    overrides = offline_args(hopper_file, "trainer.total_steps=20", "trainer.log_every=10", off)
    final = run(compose_config(overrides), tmp_path / "run", overrides)
    rows = read_metrics(tmp_path / "run")
    assert not any("eval/return" in r for r in rows) and "eval/return" not in final
    assert [r["step"] for r in rows if "train/critic_loss" in r] == [10, 20]
    assert ckpt.latest_valid(tmp_path / "run" / "checkpoints")[1]["step"] == 20


def test_a_run_saved_by_another_version_resumes(tmp_path, hopper_file):
    """Options added since the run was saved take their defaults; options removed since are dropped."""
    import yaml

    run_dir = _first_run(tmp_path, hopper_file)
    path = run_dir / ".hydra" / "config.yaml"
    saved = yaml.safe_load(path.read_text())
    saved["trainer"]["compile"] = False  # an option an older version had
    del saved["trainer"]["log_every"]  # an option it did not have yet
    path.write_text(yaml.safe_dump(saved))
    overrides = ["resume=true", "trainer.total_steps=30"]
    run(compose_config(overrides), run_dir, overrides)
    assert ckpt.latest_valid(run_dir / "checkpoints")[1]["step"] == 30


def test_each_training_seed_is_evaluated_on_its_own_episodes():
    """Before, every training seed s evaluated episodes s+10000+i: 4 seeds x 40 episodes were 43 episodes."""
    from rlkit2.run.common import EVAL_SEED_STRIDE, eval_seed

    episodes = [eval_seed(s) + i for s in range(4) for i in range(40)]
    assert len(set(episodes)) == 160
    assert eval_seed(1) - eval_seed(0) == EVAL_SEED_STRIDE >= 1000  # room for 1000-episode evaluations
