"""The WARP / BOND / WARM studies train through the runner: each training is `rlkit2-train experiment=<preset>`
(rlkit2.train.run on the composed config), with the SFT policy as `agent.init_checkpoint` and the exact checker
as `reward=callable` (WARM's RL: `reward=warm`), and the studies evaluate the runs' checkpoints. Tiny sizes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TINY = ["agent.model.hidden_size=32", "agent.model.num_layers=1", "agent.model.num_heads=2",
        "agent.model.num_kv_heads=1", "agent.model.intermediate_size=64", "agent.generation.max_new_tokens=6"]
CHECKER = "experiments.warm.common:true_scores"


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # the studies are run from the repository root (`python -m`)


@pytest.fixture
def sft(tmp_path):
    """A tiny random 'SFT policy' in the format agent.init_checkpoint reads ({"lm": state_dict})."""
    from experiments.warm.common import tokenizer
    from rlkit2 import checkpoint
    from rlkit2.lm.models import LMConfig, build_causal_lm

    lm = build_causal_lm(LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64),
                         tokenizer(), seed=0)
    return str(checkpoint.save({"lm": lm.state_dict()}, tmp_path / "sft.pt"))


def _saved_config(run_dir: Path):
    from omegaconf import OmegaConf

    return OmegaConf.load(run_dir / ".hydra" / "config.yaml")


@pytest.mark.parametrize("preset,agent", [("warp_synthetic", "warp"), ("warp_synthetic_rl", "ppo_lm"),
                                          ("bond_synthetic", "jbond")])
def test_presets_train_on_the_checker_from_the_sft_policy(tmp_path, sft, preset, agent):
    """`rlkit2-train experiment=<preset>` end to end: checkpoints written, the checker is the env's reward."""
    from experiments.warm import common
    from rlkit2.rewards.base import CallableReward
    from rlkit2.run.lm import load_phase
    from rlkit2.train import compose, run

    steps = ["agent.steps_per_run=1", "agent.num_policies=2", "agent.iterations=2"] if agent == "warp" else []
    cfg = compose([f"experiment={preset}", f"agent.init_checkpoint={sft}", "agent.prompts_per_step=4", *TINY,
                   *steps, "trainer.total_steps=4", "trainer.checkpoint_every=2", "trainer.eval_every=4",
                   "trainer.eval_episodes=4", "trainer.progress=false", "trainer.plot=false", "logger.console=false"])
    assert cfg.agent.name == agent and cfg.reward.kind == "callable" and cfg.reward.target == CHECKER
    final = run(cfg, tmp_path)
    assert "eval/reward" in final and "eval/kl" in final
    steps_saved = [s for s, _ in common.run_checkpoints(tmp_path)]
    assert steps_saved == [2, 4]
    phase = load_phase(common.run_checkpoints(tmp_path)[-1][1], trust_config=True)
    assert phase.step == 4 and isinstance(phase.env.reward_fn, CallableReward)
    assert phase.env.reward_fn.fn is common.true_scores  # the study's exact checker scores the rollouts
    docs = phase.env.sample_documents(2)
    assert torch.equal(phase.env.score(docs, docs), common.true_scores(docs, docs))


def test_load_phase_restores_a_checkpoints_policy(tmp_path, sft):
    from rlkit2 import checkpoint
    from rlkit2.core import ConfigError
    from rlkit2.run.lm import load_phase
    from rlkit2.train import compose, run

    over = ["experiment=warp_synthetic_rl", f"agent.init_checkpoint={sft}", "agent.prompts_per_step=4", *TINY,
            "trainer.total_steps=2", "trainer.checkpoint_every=1", "trainer.eval_every=0", "trainer.progress=false",
            "trainer.plot=false", "logger.console=false"]
    run(compose(over), tmp_path / "a")
    (s1, p1), (s2, p2) = checkpoint.list_checkpoints(tmp_path / "a" / "checkpoints")
    start = load_phase(compose(over))  # from the composed config: the SFT policy
    assert start.step == 0
    assert all(torch.equal(v, w) for v, w in zip(start.learner.policy.lm.state_dict().values(),
                                                 checkpoint.load(sft)["lm"].values(), strict=True))
    with pytest.raises(ConfigError, match=r"imports and calls experiments\.warm\.common:true_scores"):
        load_phase(p1)  # the checkpoint's config names user code: not run unless trusted
    phase = load_phase(p1, trust_config=True)
    assert phase.step == s1 == 1
    assert phase.load_checkpoint(p2) == s2 == 2
    saved = checkpoint.load(p2)["learner"]["policy"]
    assert all(torch.equal(v, saved[k]) for k, v in phase.learner.policy.state_dict().items())
    run(compose(["experiment=bond_synthetic", *over[1:]]), tmp_path / "b")
    with pytest.raises(ConfigError, match="agent 'jbond', not 'ppo_lm'"):
        phase.load_checkpoint(checkpoint.list_checkpoints(tmp_path / "b" / "checkpoints")[-1][1])


def test_warp_record_merges_keeps_the_last_merge_in_the_checkpointed_state(tmp_path, sft):
    from experiments.warm.common import run_checkpoints
    from rlkit2.run.lm import load_phase
    from rlkit2.train import compose, run

    over = ["experiment=warp_synthetic", f"agent.init_checkpoint={sft}", "agent.prompts_per_step=4", *TINY,
            "agent.steps_per_run=1", "agent.num_policies=2", "agent.iterations=1", "trainer.total_steps=2",
            "trainer.checkpoint_every=2", "trainer.eval_every=0", "trainer.progress=false", "trainer.plot=false",
            "logger.console=false"]
    run(compose(over), tmp_path / "on")
    phase = load_phase(run_checkpoints(tmp_path / "on")[-1][1], trust_config=True)
    last = phase.learner.last_iteration
    assert len(last["runs"]) == 2 and set(last) == {"init", "runs", "slerp", "liti"}
    assert all(torch.equal(last["liti"][k], v) for k, v in phase.learner.lm.state_dict().items())
    run(compose([*over, "agent.record_merges=false"]), tmp_path / "off")
    assert load_phase(run_checkpoints(tmp_path / "off")[-1][1], trust_config=True).learner.last_iteration == {}


def _study(module: str, argv: list[str]) -> None:
    import importlib

    importlib.import_module(module).main(argv)


def test_warp_study_launches_runner_runs_and_evaluates_their_checkpoints(tmp_path, sft):
    out, runs = tmp_path / "out", tmp_path / "runs"
    _study("experiments.warp.run", ["--betas", "0.1", "--rl-steps", "2", "--eval-every", "1", "--steps-per-run", "1",
                                    "--iterations", "2", "--etas", "0.5", "1.0", "--eval-docs", "4",
                                    "--prompts-per-step", "4", "--sft", sft, "--set", *TINY, "--out", str(out),
                                    "--runs-dir", str(runs)])
    res = json.loads((out / "results.json").read_text())
    assert [r["iteration"] for r in res["warp"]] == [0, 1] and len(res["warp"][0]["runs"]) == 2
    assert [c["step"] for c in res["rl"][0]["curve"]] == [1, 2] and res["sft"]["kl"] == pytest.approx(0.0, abs=1e-5)
    assert (out / "warp_front.png").is_file()
    for name in ("warp", "rl_beta0.1"):
        cfg = _saved_config(runs / name)
        assert cfg.reward.target == CHECKER and cfg.agent.init_checkpoint == sft
    assert _saved_config(runs / "rl_beta0.1").agent.kl_coef == 0.1


def test_bond_study_launches_a_runner_run(tmp_path, sft):
    from experiments.warm.common import run_checkpoints

    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["--ns", "1", "2", "--steps", "2", "--eval-every", "1", "--eval-docs", "4", "--prompts-per-step", "4",
            "--sft", sft, "--set", *TINY, "--out", str(out), "--runs-dir", str(runs)]
    _study("experiments.bond.run", argv)
    res = json.loads((out / "results.json").read_text())
    assert [r["n"] for r in res["bon"]] == [1, 2]
    curve = res["jbond"][0]["curve"]
    assert [c["step"] for c in curve] == [0, 1, 2] and curve[1]["train_score"] is not None
    cfg = _saved_config(runs / "jbond")
    assert cfg.agent.name == "jbond" and cfg.reward.target == CHECKER and cfg.agent.init_checkpoint == sft
    stamps = [p.stat().st_mtime_ns for _, p in run_checkpoints(runs / "jbond")]
    _study("experiments.bond.run", [*argv, "--reuse", "--reuse-bon"])  # a finished run is evaluated, not retrained
    assert [p.stat().st_mtime_ns for _, p in run_checkpoints(runs / "jbond")] == stamps
    again = json.loads((out / "results.json").read_text())["jbond"][0]["curve"]
    drop = "ms_per_query"  # a wall time; every other number is evaluated again, the same
    assert [{k: v for k, v in c.items() if k != drop} for c in again] == [
        {k: v for k, v in c.items() if k != drop} for c in curve]


def test_warm_rl_phase_runs_the_runner_against_warm_members(tmp_path, sft, monkeypatch):
    """`--phase rl`: one runner run per RM (reward=warm: average, ensemble, one member), tiny BERT members."""

    import experiments.warm.run as study
    from rlkit2.rewards.warm import save_members
    from tests.rlhf_wa.toy_rm import patch_tiny_bert

    tiny = patch_tiny_bert(monkeypatch)
    monkeypatch.setattr(study, "ARTIFACTS", tmp_path / "artifacts")
    members = []
    for s in range(2):
        m = tiny("x")
        with torch.no_grad():
            m.head.weight.normal_(generator=torch.Generator().manual_seed(s))
        members.append(m)
    save_members(members, tmp_path / "artifacts" / "rm_noise0.25")
    out, runs = tmp_path / "out", tmp_path / "runs"
    study.main(["--phase", "rl", "--rl-noise", "0.25", "--rl-steps", "2", "--rl-eval-every", "1", "--rl-eval-docs",
                "4", "--sft", sft, "--set", *TINY, "agent.prompts_per_step=2", "--out", str(out), "--runs-dir",
                str(runs)])
    res = json.loads((out / "results.json").read_text())
    assert [r["rm"] for r in res["rl"]] == ["single", "warm", "ensemble"]
    assert all([c["step"] for c in r["curve"]] == [0, 1, 2] for r in res["rl"])
    for name, combine in (("single", "member"), ("warm", "average"), ("ensemble", "ensemble")):
        cfg = _saved_config(runs / f"rl_noise0.25_{name}")
        assert cfg.reward.kind == "warm" and cfg.reward.combine == combine and cfg.agent.init_checkpoint == sft
        assert cfg.reward.directory == str(tmp_path / "artifacts" / "rm_noise0.25")


def test_console_script_from_the_repository_root_finds_the_study_reward(tmp_path, sft):
    """`rlkit2-train experiment=warp_synthetic_rl` as typed in the repository root: the console script has no
    working directory on sys.path, yet `reward.target=experiments.warm.common:true_scores` is found."""
    import os
    import subprocess

    exe = Path(sys.executable).parent / "rlkit2-train"
    if not exe.is_file():
        pytest.skip("the rlkit2-train console script is not installed next to this interpreter")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run([str(exe), "experiment=warp_synthetic_rl", f"agent.init_checkpoint={sft}",
                           "agent.prompts_per_step=2", *TINY, "trainer.total_steps=1", "trainer.eval_every=0",
                           "trainer.progress=false", "trainer.plot=false", "logger.console=false",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _saved_config(tmp_path / "run").reward.target == CHECKER
    assert (tmp_path / "run" / "policy").is_dir()
