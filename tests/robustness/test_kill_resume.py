"""SIGKILL a training run at a random step, resume it, and get exactly the uninterrupted run's result.

One test per agent family: offline (TD3+BC on a D4RL file), imitation (BC on robomimic demos) and
RLHF (PPO on the tiny LM). The reference and the resume run in-process (`rlkit2.train.run`); the run
that is killed is a real `rlkit2-train` process. The kill lands at a random moment after a random
checkpoint (seeded by RLKIT2_KILL_SEED, printed, so a failure can be replayed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlkit2 import checkpoint as ckpt
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import assert_same_tensors, imitation_args, lm_args, offline_args

KILL_SEED = int(os.environ.get("RLKIT2_KILL_SEED", random.randrange(1 << 30)))


def kill_at_random_step(args: list[str], run_dir: Path, checkpoint_steps: list[int], cwd: Path,
                        timeout: float = 240) -> int:
    """Start `rlkit2-train args`, SIGKILL it 0-0.3 s after checkpoint k (k drawn from `checkpoint_steps`);
    returns the newest checkpoint step on disk after the kill."""
    rng = random.Random(KILL_SEED)
    target, delay = rng.choice(checkpoint_steps), rng.uniform(0.0, 0.3)
    print(f"RLKIT2_KILL_SEED={KILL_SEED}: kill {delay:.2f}s after checkpoint {target}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    log = open(cwd / f"{run_dir.name}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "rlkit2.train", *args, f"hydra.run.dir={run_dir}"], cwd=cwd,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            steps = [s for s, _ in ckpt.list_checkpoints(run_dir / "checkpoints")]
            if steps and steps[-1] >= target:
                break
            if proc.poll() is not None:
                tail = Path(log.name).read_text()[-3000:]
                pytest.fail(f"run ended (rc={proc.returncode}) before the kill:\n{tail}")
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return ckpt.list_checkpoints(run_dir / "checkpoints")[-1][0]


def metric_rows(run_dir: Path, drop: tuple[str, ...] = ("time/",)) -> list[dict]:
    rows = []
    for r in read_metrics(run_dir):
        rows.append({k: v for k, v in r.items() if not k.startswith(drop)})
    return rows


def assert_resume_after(args: list[str], tmp_path: Path, kept_step: int, final_step: int, label: str) -> None:
    """Run `args` to the end; copy the run, drop its checkpoints after `kept_step` (as if killed just after that
    checkpoint), resume it: same final learner state and the same metrics rows as the uninterrupted run."""
    import shutil

    ref, resumed = tmp_path / "ref", tmp_path / "resumed"
    run(compose_config(args), ref)
    shutil.copytree(ref, resumed)
    for step, path in ckpt.list_checkpoints(resumed / "checkpoints"):
        if step > kept_step:
            path.unlink()
            path.with_name(path.name + ".sha256").unlink()
    run(compose_config([*args, "resume=true"]), resumed)
    a, b = ckpt.latest_valid(ref / "checkpoints")[1], ckpt.latest_valid(resumed / "checkpoints")[1]
    assert a["step"] == b["step"] == final_step
    assert_same_tensors(a["learner"], b["learner"], label)
    assert metric_rows(ref) == metric_rows(resumed)


def test_offline_sigkill_resume_equals_uninterrupted(tmp_path, hopper_file):
    assert_offline_sigkill_resume(hopper_file, tmp_path)


def assert_offline_sigkill_resume(hopper_file: Path, tmp_path: Path, *extra: str) -> None:
    """TD3+BC for 3000 updates, killed after an early checkpoint and resumed: the uninterrupted run's final
    learner state and metrics rows. The kill targets early checkpoints of a long run, so it lands before the end
    even on a fast machine."""
    args = offline_args(hopper_file, "trainer.total_steps=3000", "trainer.checkpoint_every=40",
                        "trainer.eval_every=1000", "trainer.log_every=40", "trainer.keep_checkpoints=3", "seed=11",
                        *extra)
    ref = tmp_path / "ref"
    run(compose_config(args), ref)

    killed = tmp_path / "killed"
    at = kill_at_random_step(args, killed, [40, 80, 120, 160], tmp_path)
    assert at < 3000, "the run finished before the kill landed"
    run(compose_config([*args, "resume=true"]), killed)

    a = ckpt.latest_valid(ref / "checkpoints")[1]
    b = ckpt.latest_valid(killed / "checkpoints")[1]
    assert a["step"] == b["step"] == 3000
    assert_same_tensors(a["learner"], b["learner"], "learner state")
    assert metric_rows(ref) == metric_rows(killed)  # every log/eval step exactly once, same numbers


def test_imitation_sigkill_resume_equals_uninterrupted(tmp_path, lift_demos):
    """POIR: 40 offline updates, then 60 online env steps (three 20-step episodes, a checkpoint after each);
    the kill lands in either phase."""
    pytest.importorskip("robosuite")
    args = imitation_args(lift_demos, "agent.online_env_steps=60", "trainer.total_steps=40",
                          "trainer.checkpoint_every=20", "trainer.eval_every=40", "trainer.log_every=20",
                          "trainer.keep_checkpoints=3", "seed=1")
    ref = tmp_path / "ref"
    run(compose_config(args), ref)

    killed = tmp_path / "killed"
    at = kill_at_random_step(args, killed, [20, 40, 60], tmp_path)
    assert at < 100, "the run finished before the kill landed"
    run(compose_config([*args, "resume=true"]), killed)

    a = ckpt.latest_valid(ref / "checkpoints")[1]
    b = ckpt.latest_valid(killed / "checkpoints")[1]
    assert a["step"] == b["step"] == 100
    assert_same_tensors(a["learner"], b["learner"], "learner state")
    assert metric_rows(ref, drop=("time/", "eval/act_ms", "eval_nominal/act_ms")) == \
        metric_rows(killed, drop=("time/", "eval/act_ms", "eval_nominal/act_ms"))


def test_rlhf_sigkill_resume_equals_uninterrupted(tmp_path):
    """PPO on the tiny LM: a checkpoint every iteration, the kill after a random one."""
    args = lm_args("trainer.total_steps=10", "trainer.log_every=1", "trainer.eval_every=5",
                   "trainer.checkpoint_every=1", "trainer.keep_checkpoints=3", "seed=4")
    ref = tmp_path / "ref"
    run(compose_config(args), ref)

    killed = tmp_path / "killed"
    at = kill_at_random_step(args, killed, [1, 2, 3], tmp_path)
    assert at < 10, "the run finished before the kill landed"
    run(compose_config([*args, "resume=true"]), killed)

    a = ckpt.latest_valid(ref / "checkpoints")[1]
    b = ckpt.latest_valid(killed / "checkpoints")[1]
    assert a["step"] == b["step"] == 10
    assert_same_tensors(a["learner"], b["learner"], "learner state")
    assert metric_rows(ref) == metric_rows(killed)


@pytest.mark.parametrize("agent", ["td3_bc", "iql", "qsarsa_ac2"])
def test_offline_resume_mid_log_window_equals_uninterrupted(tmp_path, hopper_file, agent):
    """Every offline agent resumes exactly, also when the checkpoint falls inside a log window (the window's
    running sums travel in the checkpoint, so the averages logged after the resume are the same)."""
    assert_offline_mid_window_resume(hopper_file, tmp_path, agent)


def assert_offline_mid_window_resume(hopper_file: Path, tmp_path: Path, agent: str, *extra: str) -> None:
    """40 updates of `agent`, resumed from the checkpoint at 15 (inside a log window of 10): the uninterrupted
    run's learner state and metrics rows."""
    args = [*offline_args(hopper_file, "trainer.total_steps=40", "trainer.checkpoint_every=15",
                          "trainer.eval_every=20", "trainer.log_every=10", "trainer.keep_checkpoints=5", "seed=9"),
            f"agent={agent}", "agent.hidden=[32,32]", "agent.batch_size=32", *extra]
    assert_resume_after(args, tmp_path, kept_step=15, final_step=40, label=agent)


@pytest.mark.parametrize("agent, extra", [("warp", ["agent.steps_per_run=1", "agent.num_policies=2"]),
                                          ("jbond", [])])
def test_rlhf_wa_agents_resume_equals_uninterrupted(tmp_path, agent, extra):
    """WARP and J-BOND through the lm runner: resuming after step 2 ends where the uninterrupted run ends
    (J-BOND's prompt stream was not in its checkpoint: a resumed run trained on other prompts)."""
    args = [f"agent={agent}", "agent.model.hidden_size=32", "agent.model.num_layers=1", "agent.model.num_heads=2",
            "agent.model.num_kv_heads=1", "agent.model.intermediate_size=64", "agent.generation.max_new_tokens=6",
            "agent.prompts_per_step=4", "env=text_synthetic", "reward=keyword", "trainer.total_steps=4",
            "trainer.log_every=1", "trainer.eval_every=4", "trainer.eval_episodes=4", "trainer.checkpoint_every=1",
            "trainer.keep_checkpoints=5", "trainer.progress=false", "trainer.plot=false", "trainer.threads=1",
            "logger.console=false", *extra]
    assert_resume_after(args, tmp_path, kept_step=2, final_step=4, label=agent)


def test_resume_with_no_valid_checkpoint_starts_over_without_duplicate_rows(tmp_path, hopper_file):
    """Killed before its first checkpoint (or every checkpoint corrupt): resume=true starts fresh, and the rows
    the killed run had logged are not kept twice."""
    import shutil

    args = offline_args(hopper_file, "trainer.total_steps=40", "trainer.checkpoint_every=40", "trainer.eval_every=40",
                        "trainer.log_every=10", "seed=6")
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run(compose_config(args), ref)
    shutil.copytree(ref, killed)
    for _, path in ckpt.list_checkpoints(killed / "checkpoints"):
        path.write_bytes(b"torn")  # no checkpoint survives
    run(compose_config([*args, "resume=true"]), killed)
    assert metric_rows(ref) == metric_rows(killed)
