"""`init_from`: a new run starts from another run's checkpoint with its own (changed) settings; `resume` may not
change them, and a resume of the new run's own checkpoints takes precedence."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.core import ConfigError
from tests.helpers import compose_config
from tests.offline.test_offline_cli import tiny_hopper_file


def _overrides(data, steps, **extra):
    over = {"agent": "td3_bc", "env": "hopper", "env.dataset": data, "agent.hidden": "[16,16]",
            "agent.batch_size": 16, "trainer.total_steps": steps, "trainer.eval_every": 0, "trainer.log_every": 10,
            "trainer.checkpoint_every": 10, "trainer.threads": 1, "trainer.plot": "false",
            "trainer.progress": "false", **extra}
    return [f"{k}={v}" for k, v in over.items()]


def test_a_new_run_starts_from_a_checkpoint_with_changed_settings(tmp_path, caplog):
    from rlkit2.train import run

    caplog.set_level(logging.INFO)

    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=300)
    first = tmp_path / "first"
    run(compose_config(_overrides(data, 20)), first)
    start = first / "checkpoints" / "step_000000020.pt"
    # resuming the run with another alpha is refused: a resumed run keeps its settings
    with pytest.raises(ConfigError, match="agent.alpha"):
        run(compose_config(_overrides(data, 40, resume=start, **{"agent.alpha": 1.0})), tmp_path / "refused")
    second = tmp_path / "second"
    run(compose_config(_overrides(data, 40, init_from=start, **{"agent.alpha": 1.0})), second)
    said = caplog.text
    caplog.clear()
    assert f"initialised from {start} at step 20" in said and "agent.alpha: 2.5 -> 1.0" in said
    steps = [json.loads(x)["step"] for x in (second / "metrics.jsonl").read_text().splitlines()]
    assert min(steps) > 20  # the counter continues from the checkpoint
    assert sorted(p.name for p in (second / "checkpoints").glob("step_*.pt"))[0] == "step_000000030.pt"
    # a kill and resume=true of the new run resumes its own checkpoint, not init_from's
    end = ckpt.load(second / "checkpoints" / "step_000000040.pt")["learner"]
    (second / "checkpoints" / "step_000000040.pt").unlink()
    run(compose_config(_overrides(data, 40, init_from=start, resume="true", **{"agent.alpha": 1.0})), second)
    assert "resumed from" in caplog.text and "initialised" not in caplog.text
    again = ckpt.load(second / "checkpoints" / "step_000000040.pt")["learner"]
    for k, v in end["modules"]["actor"].items():
        torch.testing.assert_close(v, again["modules"]["actor"][k])


def test_bad_init_from_is_refused_before_anything_is_written(tmp_path):
    from rlkit2.train import run

    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=100)
    with pytest.raises(ConfigError, match="init_from=.*must be a checkpoint file"):
        run(compose_config(_overrides(data, 10, init_from=tmp_path / "none.pt")), tmp_path / "a")
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="cannot be combined with resume"):
        run(compose_config(_overrides(data, 10, init_from=tmp_path / "x.pt", resume=tmp_path)), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_new_runs_optimiser_settings_apply_and_a_changed_seed_is_refused(tmp_path):
    from rlkit2.run.control import control_loop
    from rlkit2.train import run

    data = tiny_hopper_file(tmp_path / "tiny.hdf5", steps=200)
    run(compose_config(_overrides(data, 10)), tmp_path / "first")
    start = tmp_path / "first" / "checkpoints" / "step_000000010.pt"
    cfg = compose_config(_overrides(data, 20, init_from=start, **{"agent.actor_lr": 1e-5, "agent.critic_lr": 2e-5}))
    loop = control_loop(cfg, tmp_path / "second", _NoLogger())
    loop.init_from()
    lrs = {k: [g["lr"] for g in o.param_groups] for k, o in loop.learner.optimizers.items()}
    assert lrs["actor"] == [1e-5] and lrs["critic"] == [2e-5], lrs  # not the checkpoint's 3e-4
    assert loop.phase.step == 10
    with pytest.raises(ConfigError, match="seed=1, the checkpoint's run had seed=0"):
        control_loop(compose_config(_overrides(data, 20, init_from=start, seed=1)), tmp_path / "third",
                     _NoLogger()).init_from()


class _NoLogger:
    def write(self, *args, **kwargs):
        pass

    def video(self, *args, **kwargs):
        pass

    def close(self):
        pass
