"""NaN/inf in a loss or a gradient: nan_policy=stop names the step, the loss and a loadable last-good
checkpoint; nan_policy=skip drops the update, keeps the parameters finite and counts it."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from rlkit2 import checkpoint as ckpt
from rlkit2.agents.td3_bc import losses as td3_bc_losses
from rlkit2.core import NumericalError
from rlkit2.data import read_d4rl, write_d4rl
from rlkit2.logging import read_metrics
from rlkit2.train import run
from tests.helpers import compose_config
from tests.robustness.common import all_finite, offline_args


def _nan_critic_loss_on(monkeypatch, calls: set[int]) -> None:
    """Make the critic loss NaN on the given (1-based) calls; gradients of a NaN loss are NaN for real."""
    real, count = td3_bc_losses.critic_loss, [0]

    def critic_loss(q, target):
        count[0] += 1
        loss = real(q, target)
        return loss * float("nan") if count[0] in calls else loss

    monkeypatch.setattr(td3_bc_losses, "critic_loss", critic_loss)


def _scaled_rewards(src, dst, scale: float, rows=None):
    data = read_d4rl(src)
    arrays = dict(data.arrays)
    rewards = arrays["rewards"].astype(np.float32).copy()
    if rows is None:
        rewards *= scale
    else:
        rewards[rows] = scale
    arrays["rewards"] = rewards
    return write_d4rl(dst, arrays, metadata=data.metadata)


def _checkpoint_named(message: str):
    m = re.search(r"last good checkpoint: (\S+\.pt)", message)
    assert m, message
    return m.group(1)


def test_nan_loss_stops_with_step_loss_name_and_a_loadable_checkpoint(tmp_path, hopper_file, monkeypatch):
    _nan_critic_loss_on(monkeypatch, {37})
    cfg = compose_config(offline_args(hopper_file, "trainer.total_steps=60", "trainer.checkpoint_every=20",
                                      "trainer.eval_every=1000", "trainer.log_every=10"))
    with pytest.raises(NumericalError) as info:
        run(cfg, tmp_path / "run")
    msg = str(info.value)
    assert "'critic_loss'" in msg and "at step 36" in msg, msg
    path = _checkpoint_named(msg)
    assert path.endswith("step_000000020.pt")
    state = ckpt.load(path)
    assert state["step"] == 20 and all_finite(state["learner"]["modules"])
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")] == [20]
    # nothing after the fault was logged as if training went on
    assert max(r["step"] for r in read_metrics(tmp_path / "run")) <= 36


def test_overflowing_rewards_stop_the_run_before_any_checkpoint(tmp_path, hopper_file):
    """A real fault: finite rewards of 1e30 overflow the squared TD error to inf on the first update."""
    data = _scaled_rewards(hopper_file, tmp_path / "huge.hdf5", 1e30)
    cfg = compose_config(offline_args(data, "trainer.total_steps=20", "trainer.checkpoint_every=10",
                                      "trainer.eval_every=1000", "trainer.log_every=10"))
    with pytest.raises(NumericalError, match=r"'critic_loss' at step 0 \(no checkpoint was written yet\)"):
        run(cfg, tmp_path / "run")
    assert ckpt.list_checkpoints(tmp_path / "run" / "checkpoints") == []


def test_nan_gradient_with_finite_loss_never_reaches_a_checkpoint(tmp_path, hopper_file, monkeypatch):
    """A NaN gradient (finite loss) at a checkpoint step: the poisoned parameters are caught before saving."""
    from rlkit2.agents.td3_bc.learner import TD3BCLearner

    real_step, calls = TD3BCLearner.step, [0]

    def step(self):
        calls[0] += 1
        if calls[0] == 45:  # a checkpoint step, and odd: no actor update reads the poisoned critic
            handle = self.critic_params[0].register_hook(lambda g: g * float("nan"))
            try:
                return real_step(self)
            finally:
                handle.remove()
        return real_step(self)

    monkeypatch.setattr(TD3BCLearner, "step", step)
    cfg = compose_config(offline_args(hopper_file, "trainer.total_steps=60", "trainer.checkpoint_every=15",
                                      "trainer.eval_every=1000", "trainer.log_every=10", "trainer.keep_checkpoints=5"))
    with pytest.raises(NumericalError) as info:
        run(cfg, tmp_path / "run")
    msg = str(info.value)
    assert "parameters of 'critic'" in msg and "at step 45" in msg, msg
    assert _checkpoint_named(msg).endswith("step_000000030.pt")
    steps = [s for s, _ in ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert steps == [15, 30]
    assert all_finite(ckpt.load(_checkpoint_named(msg))["learner"]["modules"])


def test_skip_policy_drops_bad_updates_counts_them_and_trains_on(tmp_path, hopper_file, monkeypatch):
    _nan_critic_loss_on(monkeypatch, {15, 16, 31})
    cfg = compose_config(offline_args(hopper_file, "trainer.total_steps=60", "trainer.checkpoint_every=60",
                                      "trainer.eval_every=60", "trainer.log_every=20", "trainer.nan_policy=skip"))
    final = run(cfg, tmp_path / "run")
    assert np.isfinite(final["eval/return"])
    rows = [r for r in read_metrics(tmp_path / "run") if "train/skipped_updates" in r]
    assert [(r["step"], r["train/skipped_updates"]) for r in rows] == [(20, 2.0), (40, 3.0), (60, 3.0)]
    assert all(isinstance(r["train/critic_loss"], float) for r in rows)  # averaged over the kept updates only
    path, state = ckpt.latest_valid(tmp_path / "run" / "checkpoints")
    assert state["step"] == 60 and state["skipped_updates"] == 3
    assert all_finite(state["learner"]["modules"])


def test_skip_policy_with_a_poisoned_row_does_not_redraw_the_same_batch(tmp_path, hopper_file):
    """One row with reward 1e30: every batch holding it overflows. Skipping restores the learner but not the
    sampler, so later batches differ and only the unlucky ones (about 5% at batch 32 of 600) are dropped."""
    data = _scaled_rewards(hopper_file, tmp_path / "poisoned.hdf5", 1e30, rows=[123])
    cfg = compose_config(offline_args(data, "trainer.total_steps=100", "trainer.checkpoint_every=100",
                                      "trainer.eval_every=100", "trainer.log_every=100", "trainer.nan_policy=skip"))
    run(cfg, tmp_path / "run")
    row = [r for r in read_metrics(tmp_path / "run") if "train/skipped_updates" in r][-1]
    assert 1 <= row["train/skipped_updates"] <= 25, row
    state = ckpt.latest_valid(tmp_path / "run" / "checkpoints")[1]
    assert all_finite(state["learner"]["modules"])
    assert torch.isfinite(torch.tensor(row["train/critic_loss"]))


# --------------------------------------------------------------------------- imitation and RLHF runners


def _nan_on_calls(monkeypatch, module, name: str, calls: set[int]) -> None:
    real, count = getattr(module, name), [0]

    def wrapped(*args, **kwargs):
        count[0] += 1
        out = real(*args, **kwargs)
        if count[0] in calls:
            return (out[0] * float("nan"), *out[1:]) if isinstance(out, tuple) else out * float("nan")
        return out

    monkeypatch.setattr(module, name, wrapped)


def _bc_args(demos, *extra):
    return ["agent=bc", "env=robosuite/lift", f"env.dataset={demos}", "env.num_demos=4", "env.horizon=20",
            "agent.head=deterministic", "agent.hidden=[32,32]", "agent.batch_size=32", "trainer.eval_episodes=1",
            "trainer.progress=false",
            "logger.console=false", "trainer.plot=false", "trainer.threads=1", *extra]


def test_imitation_nan_stop_and_skip(tmp_path, lift_demos, monkeypatch):
    pytest.importorskip("robosuite")
    from rlkit2.agents.bc import losses as bc_losses

    _nan_on_calls(monkeypatch, bc_losses, "mse", {27})
    cfg = compose_config(_bc_args(lift_demos, "trainer.total_steps=40", "trainer.checkpoint_every=10",
                                  "trainer.eval_every=1000", "trainer.log_every=10"))
    with pytest.raises(NumericalError) as info:
        run(cfg, tmp_path / "stop")
    msg = str(info.value)
    assert "'bc_loss'" in msg and "at step 26" in msg, msg
    assert _checkpoint_named(msg).endswith("step_000000020.pt")
    assert all_finite(ckpt.load(_checkpoint_named(msg))["learner"]["modules"])

    monkeypatch.undo()
    _nan_on_calls(monkeypatch, bc_losses, "mse", {5, 6, 13})
    cfg = compose_config(_bc_args(lift_demos, "trainer.total_steps=20", "trainer.checkpoint_every=20",
                                  "trainer.eval_every=20", "trainer.log_every=10", "trainer.nan_policy=skip"))
    run(cfg, tmp_path / "skip")
    rows = [r for r in read_metrics(tmp_path / "skip") if "train/skipped_updates" in r]
    assert [(r["step"], r["train/skipped_updates"]) for r in rows] == [(10, 2.0), (20, 3.0)]
    assert all(isinstance(r["train/bc_loss"], float) for r in rows)
    assert all_finite(ckpt.latest_valid(tmp_path / "skip" / "checkpoints")[1]["learner"]["modules"])


def test_rlhf_nan_stop_and_skip(tmp_path, monkeypatch):
    from rlkit2.agents.ppo_lm import losses as ppo_losses
    from tests.robustness.common import lm_args

    # two PPO minibatch updates an iteration (8 prompts, minibatch 8, 2 epochs): call 5 is in iteration 3
    _nan_on_calls(monkeypatch, ppo_losses, "ppo_policy_loss", {5})
    cfg = compose_config(lm_args("trainer.total_steps=4", "trainer.log_every=1", "trainer.eval_every=100",
                                 "trainer.checkpoint_every=1", "trainer.keep_checkpoints=5"))
    with pytest.raises(NumericalError) as info:
        run(cfg, tmp_path / "stop")
    msg = str(info.value)
    assert "loss" in msg and "at step 2" in msg, msg
    path = _checkpoint_named(msg)
    assert path.endswith("step_000000002.pt")
    state = ckpt.load(path)
    assert state["step"] == 2 and all_finite(state["learner"]["policy"])

    monkeypatch.undo()
    _nan_on_calls(monkeypatch, ppo_losses, "ppo_policy_loss", {3})
    cfg = compose_config(lm_args("trainer.total_steps=3", "trainer.log_every=1", "trainer.eval_every=3",
                                 "trainer.checkpoint_every=3", "trainer.nan_policy=skip"))
    final = run(cfg, tmp_path / "skip")
    assert np.isfinite(final["eval/return"])
    rows = [r for r in read_metrics(tmp_path / "skip") if "train/skipped_updates" in r]
    assert [(r["step"], r["train/skipped_updates"]) for r in rows] == [(1, 0.0), (2, 1.0), (3, 1.0)]
    assert all_finite(ckpt.latest_valid(tmp_path / "skip" / "checkpoints")[1]["learner"]["policy"])
