"""`-m` sweeps with the joblib launcher: one run dir (and metrics.jsonl) per job."""

from __future__ import annotations

import json

import numpy as np

from rlkit2.logging import read_metrics
from rlkit2.sweep import main as sweep_main
from tests.helpers import cli


def test_joblib_multirun_three_seeds(tmp_path):
    sweep = tmp_path / "sweep"
    cli(["-m", "seed=0,1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
         "agent=td3", "agent.hidden=[16]", "agent.batch_size=16", "trainer.total_steps=300",
         "trainer.learning_starts=100", "trainer.eval_every=300", "trainer.eval_episodes=1", "trainer.log_every=100",
         "trainer.progress=false", "trainer.plot=false", "trainer.threads=1", "logger.console=false"], tmp_path)
    runs = sorted(p.parent for p in sweep.rglob("metrics.jsonl"))
    assert [r.name for r in runs] == ["seed=0", "seed=1", "seed=2"]
    finals = [[row["eval/return"] for row in read_metrics(r) if "eval/return" in row][-1] for r in runs]
    assert len(set(finals)) == 3  # the seeds really differ

    # The sweep summary groups the three seeds into one setting with their mean and std.
    sweep_main(["--key", "eval/return", str(sweep)])
    summary = json.loads((sweep / "summary.json").read_text())
    (row,) = summary["settings"].values()
    assert row["n"] == 3 and abs(row["mean"] - np.mean(finals)) < 1e-6 and abs(row["std"] - np.std(finals)) < 1e-6
    assert (sweep / "summary.png").stat().st_size > 1000 and "± " in (sweep / "summary.md").read_text()


def test_many_overrides_get_a_short_job_dir_and_auto_threads_split_the_cores(tmp_path):
    """15 overrides (before: OSError 'File name too long' or 250-character paths); threads=auto under a 2-job
    joblib launch gives each job cores // 2 threads, so two jobs never oversubscribe 2 cores."""
    import psutil

    sweep = tmp_path / "sweep"
    many = ["agent.actor_lr=0.0003,0.0001", "agent.critic_lr=0.0003", "agent.gamma=0.99", "agent.tau=0.005",
            "agent.policy_noise=0.2", "agent.noise_clip=0.5", "agent.policy_freq=2", "agent.exploration_noise=0.1",
            "agent.replay_capacity=1000", "trainer.learning_starts=50", "trainer.eval_episodes=1",
            "trainer.checkpoint_every=100", "trainer.keep_checkpoints=1", "trainer.updates_per_step=1",
            "env.max_episode_steps=50"]
    proc = cli(["-m", *many, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}",
                "agent=td3", "agent.hidden=[8]", "agent.batch_size=8", "trainer.total_steps=100",
                "trainer.eval_every=100", "trainer.log_every=50", "trainer.progress=false", "trainer.plot=false",
                "logger.console=false"], tmp_path)
    runs = sorted(p.parent for p in sweep.rglob("metrics.jsonl"))
    assert len(runs) == 2
    for r in runs:
        assert len(r.parent.name) <= 80 and r.name == "seed=0"
        assert (r / ".hydra" / "overrides.yaml").read_text().count("agent.") >= 9  # the full overrides kept
        job = json.loads((r / "job.json").read_text())  # and in job.json, with the launch's particulars
        assert sum(o.startswith("agent.") for o in job["overrides"]) >= 9 and "agent=td3" in job["overrides"]
        assert job["mode"] == "multirun" and job["sweep_dir"] == str(sweep) and job["num"] in (0, 1)
        assert job["resumed"] is False and job["pid"] > 0 and job["started"]
    threads = max(1, (psutil.cpu_count(logical=False) or 1) // 2)
    assert proc.stdout.count(f"| threads {threads} |") == 2, proc.stdout
