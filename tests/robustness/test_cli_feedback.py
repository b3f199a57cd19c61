"""What a user sees from `rlkit2-train`: a start banner, user mistakes as one line with exit code 2, no empty run
dir after a failed start, and a resume that needs nothing but the run dir."""

from __future__ import annotations

from rlkit2 import checkpoint as ckpt
from tests.helpers import cli
from tests.robustness.common import offline_args


def test_misspelt_key_is_one_line_with_a_suggestion(tmp_path):
    proc = cli(["agent=td3_bc", "agent.actor_lrr=0.1"], tmp_path, check=False)
    assert proc.returncode == 2
    assert "did you mean 'agent.actor_lr'?" in proc.stderr and "Traceback" not in proc.stderr
    assert "+agent.actor_lrr" not in proc.stderr  # Hydra's advice would add the typo as a new key


def test_a_failed_start_is_one_line_and_leaves_no_run_dir(tmp_path):
    proc = cli(["agent=td3_bc", "env.dataset=/no/such/file.hdf5", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
               check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("rlkit2-train: error: /no/such/file.hdf5")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_banner_then_resume_from_the_run_dir_alone(tmp_path, hopper_file):
    run_dir = tmp_path / "run"
    args = [*offline_args(hopper_file, "trainer.total_steps=20", "trainer.checkpoint_every=10",
                          "trainer.eval_every=10", "logger.console=false"), f"hydra.run.dir={run_dir}"]
    out = cli(args, tmp_path).stdout
    assert f"[rlkit2] agent td3_bc | env Hopper-v5 | dataset {hopper_file}" in out
    assert f"[rlkit2] dataset {hopper_file}: 599 transitions, 26 episodes, mean episode return" in out
    assert "[rlkit2] run dir:" in out
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    # the README's resume: the run dir and resume=true, nothing retyped
    cli([f"hydra.run.dir={run_dir}", "resume=true", "trainer.total_steps=30"], tmp_path)
    state = ckpt.latest_valid(run_dir / "checkpoints")[1]
    assert state["step"] == 30 and state["config"]["agent"]["name"] == "td3_bc"
    refused = cli([f"hydra.run.dir={run_dir}", "resume=true", "agent.tau=0.1"], tmp_path, check=False)
    assert refused.returncode == 2 and "agent.tau: run 0.005, now 0.1" in refused.stderr
