"""`trainer.keep_best`: the policy of the best evaluation so far is saved beside the final one, survives a
resume, and a metric the evaluation does not report (or no evaluation at all) is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from rlkit2.core import ConfigError
from rlkit2.policy import load_policy
from tests.helpers import compose_config
from tests.offline.test_offline_cli import tiny_hopper_file


def _overrides(data, steps, **extra):
    over = {"agent": "td3_bc", "env": "hopper", "env.dataset": data, "agent.hidden": "[16,16]",
            "agent.batch_size": 16, "trainer.total_steps": steps, "trainer.eval_every": 10,
            "trainer.eval_episodes": 1, "trainer.log_every": 10, "trainer.checkpoint_every": 10,
            "trainer.threads": 1, "trainer.plot": "false", "trainer.progress": "false",
            "trainer.keep_best": "eval/return", **extra}
    return [f"{k}={v}" for k, v in over.items()]


def _evals(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["eval/return"]) for r in rows if "eval/return" in r]


def test_the_best_evaluation_policy_is_kept_beside_the_final_one(tmp_path):
    from rlkit2.train import run

    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=300)
    final = run(compose_config(_overrides(data, 40)), tmp_path / "run")
    evals = _evals(tmp_path / "run")
    assert len(evals) == 4
    best_step, best_return = max(evals, key=lambda e: (e[1], -e[0]))  # ties keep the earlier policy
    policy, info = load_policy(tmp_path / "run" / "policy_best.pt", with_info=True)
    assert info["step"] == best_step and info["eval"]["eval/return"] == pytest.approx(best_return)
    assert final["best/value"] == pytest.approx(best_return) and final["best/step"] == best_step
    assert policy(np.zeros(11, np.float32)).shape == (3,)
    assert load_policy(tmp_path / "run", with_info=True)[1]["step"] == 40  # policy.pt: the final policy


SCRIPTED = {10: 1.0, 20: 5.0, 30: 3.0, 40: 5.0, 50: 4.0, 60: 0.0}  # the best at 20; 40 ties it, later ones are worse


def test_the_best_so_far_survives_a_resume(tmp_path, monkeypatch):
    """Scripted evaluation scores: after a stop at 30 and a resume to 60 the best is still step 20's policy, so
    the resumed run must have restored it from the checkpoint rather than start over (it would pick 40's)."""
    from rlkit2.run.control import OfflinePhase
    from rlkit2.train import run

    monkeypatch.setattr(OfflinePhase, "evaluate", lambda self: {"eval/return": SCRIPTED[self.step]})
    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=300)
    run(compose_config(_overrides(data, 30)), tmp_path / "split")
    resumed = run(compose_config(_overrides(data, 60, resume="true")), tmp_path / "split")
    assert resumed["best/step"] == 20 and resumed["best/value"] == 5.0
    assert load_policy(tmp_path / "split" / "policy_best.pt", with_info=True)[1]["step"] == 20
    assert json.loads((tmp_path / "split" / "best.json").read_text()) == {
        "metric": "eval/return", "value": 5.0, "step": 20}


def test_a_run_started_from_another_runs_checkpoint_keeps_no_best_of_that_run(tmp_path, monkeypatch):
    """init_from: the source run's best policy file stays in its dir, so the new run chooses its own."""
    from rlkit2.run.control import OfflinePhase
    from rlkit2.train import run

    monkeypatch.setattr(OfflinePhase, "evaluate", lambda self: {"eval/return": SCRIPTED[self.step]})
    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=300)
    run(compose_config(_overrides(data, 30)), tmp_path / "source")
    start = tmp_path / "source" / "checkpoints" / "step_000000030.pt"
    final = run(compose_config(_overrides(data, 60, init_from=start)), tmp_path / "new")
    assert final["best/step"] == 40 and final["best/value"] == 5.0  # its own evaluations 40-60 only
    assert load_policy(tmp_path / "new" / "policy_best.pt", with_info=True)[1]["step"] == 40


def test_a_best_file_that_is_not_the_checkpoints_best_is_chosen_again(tmp_path, monkeypatch, caplog):
    """Resuming an older checkpoint after the run saved a later best: the best is chosen again, and said so."""
    import logging

    from rlkit2.run.control import OfflinePhase
    from rlkit2.train import run

    caplog.set_level(logging.INFO)
    scores = {10: 1.0, 20: 2.0, 30: 3.0, 40: 0.5}
    monkeypatch.setattr(OfflinePhase, "evaluate", lambda self: {"eval/return": scores[self.step]})
    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=300)
    run(compose_config(_overrides(data, 30, **{"trainer.keep_checkpoints": 3})), tmp_path / "r")
    older = tmp_path / "r" / "checkpoints" / "step_000000020.pt"  # its best: step 20; best.json: step 30
    final = run(compose_config(_overrides(data, 40, resume=older)), tmp_path / "r")
    assert "is not the checkpoint's best" in caplog.text
    assert final["best/step"] == 30 and load_policy(tmp_path / "r" / "policy_best.pt", with_info=True)[1]["step"] == 30


def test_a_metric_the_evaluation_does_not_report_is_refused(tmp_path):
    from rlkit2.train import run

    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=100)
    with pytest.raises(ConfigError, match=r"trainer.keep_best=eval/succes: the evaluation reports no such "
                                          r"metric; it reports .*eval/return"):
        run(compose_config(_overrides(data, 10, **{"trainer.keep_best": "eval/succes"})), tmp_path / "typo")
    with pytest.raises(ConfigError, match="trainer.keep_best=eval/return selects by evaluation, but evaluation "
                                          "is off"):
        run(compose_config(_overrides(data, 10, **{"trainer.eval_every": 0})), tmp_path / "no_eval")


def test_an_option_added_since_a_run_was_saved_is_not_a_change_of_its_settings(tmp_path):
    """A run dir saved before trainer.keep_best existed still counts as the same run (the imitation study reuses
    finished runs this way); changing the option is a change."""
    from rlkit2.run_config import config_changes

    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=100)
    cfg = compose_config(_overrides(data, 10, **{"trainer.keep_best": ""}))
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["trainer"]["keep_best"]  # as an older rlkit2 wrote it
    assert config_changes(saved, cfg) == []
    cfg.trainer.keep_best = "eval/return"
    assert config_changes(saved, cfg) == ["trainer.keep_best: '' -> 'eval/return'"]
