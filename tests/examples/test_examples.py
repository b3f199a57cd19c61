"""The examples/ scripts, run as a user runs them (a subprocess from the repo root) at a tiny budget.

Each asserts what the example is for: (a) the hand-written loop learns (beats the random policy) and its
saved policy reloads to the same actions; (b) a user env + D4RL file train through the config system and
the policy reloads from the run dir and from a checkpoint; (c) a user reward raises under RLHF and the
policy reloads with transformers alone; (d) the WARM average is the mean of the members' weights and
scores identically when reloaded with transformers alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(script: str, *args: str, timeout: int = 600) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="offline",
               TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def point_mass():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import point_mass

        point_mass.register()
        yield point_mass
    finally:
        sys.path.remove(str(EXAMPLES))


def test_a_train_qsarsa_in_own_loop_learns_and_saves(tmp_path, point_mass):
    import rlkit2

    run_example("train_qsarsa_loop.py", "--steps", "300", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    # the random policy drifts (about -31); steering home gets close to 0
    assert summary["return"] > summary["random_return"] + 10, summary
    policy, info = rlkit2.load_policy(tmp_path / "policy.pt", with_info=True)
    assert info["agent"] == "qsarsa" and info["step"] == 300
    env = rlkit2.make_env(info["env"], seed=0)
    again = rlkit2.evaluate(env, policy, num_episodes=10, seed=10_000)["eval/return"]
    assert again == pytest.approx(summary["return"], abs=1e-6)  # the saved policy is the evaluated one


def test_b_user_env_with_d4rl_file_then_load_and_evaluate(tmp_path, point_mass):
    import rlkit2

    out = run_example("load_and_evaluate.py", "--steps", "200", "--episodes", "3", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "evaluation.json").read_text())
    assert summary["agent"] == "td3_bc" and summary["env"] == "PointMass-v0" and summary["trained_steps"] == 200
    assert np.isfinite(summary["return"]), out
    # the run dir's policy.pt and the policy rebuilt from its checkpoint (config + learner state) agree
    from_file = rlkit2.load_policy(tmp_path)
    from_ckpt, info = rlkit2.load_policy(tmp_path / "checkpoints", with_info=True)
    assert info["checkpoint"].endswith("step_000000200.pt")
    obs = np.random.default_rng(0).uniform(-1, 1, (16, 2)).astype(np.float32)
    np.testing.assert_array_equal(from_file(obs), from_ckpt(obs))
    # and the script also evaluates a policy given by path
    run_example("load_and_evaluate.py", str(tmp_path / "policy.pt"), "--episodes", "2", "--out", str(tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "evaluation.json").read_text())["agent"] == "td3_bc"


@pytest.mark.slow
def test_c_rlhf_custom_reward_rises_and_reloads_with_transformers(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_example("rlhf_custom_reward.py", "--steps", "16", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["reward_last"] > summary["reward_first"] + 0.1, summary
    folder = tmp_path / "policy"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert model.config.model_type == "gemma2"
    ids = tok(["<doc> bob likes jazz . <sum>"], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        assert torch.isfinite(model(**ids).logits).all()


@pytest.mark.slow
def test_d_warm_average_of_user_checkpoints(tmp_path):
    pytest.importorskip("transformers")
    import torch

    from rlkit2 import checkpoint
    from rlkit2.rewards.reward_model import RewardModel

    run_example("warm_average.py", "--steps", "3", "--test-pairs", "16", "--out", str(tmp_path))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["max_abs_diff_transformers_only"] < 1e-4, summary
    assert {"member0", "member1", "member2", "warm", "ensemble"} <= set(summary)
    # the saved average is the plain mean of the three members' weights
    members = [checkpoint.load(p)["state_dict"] for p in sorted((tmp_path / "members").glob("member*.pt"))]
    warm = RewardModel.from_pretrained(str(tmp_path / "warm_rm"))
    assert warm.pooling == "mean" and warm.max_length == 64
    sd = warm.state_dict()
    for key in ("head.weight", "trunk.encoder.layer.0.attention.self.query.weight"):
        torch.testing.assert_close(sd[key], torch.stack([m[key] for m in members]).mean(0))
