"""The fair imitation study: what each policy is given, clean evaluation seeds, and its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from experiments.imitation import study, study_plan, study_report
from experiments.imitation.study import compose


def test_each_axis_shifts_only_itself():
    def as_dict(axis, s):
        return dict(o.split("=") for o in study.shift_overrides(axis, s))

    obj, rob, noi, both = (as_dict(a, 0.1) for a in ("object", "robot", "noise", "all"))
    assert obj == {"env.shift.init": "0.1", "env.shift.action_noise": "0.0", "env.shift.robot_init_scale": "0.0",
                   "env.shift.object_init_scale": "1.0"}
    assert rob["env.shift.object_init_scale"] == "0.0" and rob["env.shift.robot_init_scale"] == "1.0"
    assert noi["env.shift.init"] == "0.0" and noi["env.shift.action_noise"] == "0.1"
    assert both["env.shift.init"] == both["env.shift.action_noise"] == "0.1"
    with pytest.raises(ValueError, match="unknown shift axis"):
        study.parse_cells("all:0.1,friction:0.2")
    assert study.parse_cells("all:0,noise:0.2") == [("all", 0.0), ("noise", 0.2)]


def test_bc_and_poir_get_the_same_features_and_budget(tmp_path):
    feats = study.features()
    assert feats == [2, 7, 8, 9, 12, 17, 18]  # POIR's preset score_dims: what "features" means for both
    budget = study_plan.Budget()
    cfgs = {n: compose(study.overrides_for(n, 3, tmp_path / "d.hdf5", budget)) for n in study_plan.OFFLINE}
    assert list(cfgs["bc_features"].agent.obs_dims) == list(cfgs["poir_features"].agent.prior.obs_dims) == feats
    assert list(cfgs["poir_features"].agent.score_dims) == feats and list(cfgs["poir"].agent.score_dims) == []
    assert list(cfgs["bc"].agent.obs_dims) == [] and list(cfgs["poir"].agent.prior.obs_dims) == []
    # BC is POIR's prior network with the same number of updates, seed and demos
    for name in ("bc", "bc_features"):
        bc, prior = cfgs[name].agent, cfgs["poir"].agent.prior
        assert (bc.head, list(bc.hidden), bc.lr, bc.batch_size) == (prior.head, list(prior.hidden), prior.lr,
                                                                     prior.batch_size)
    for name, cfg in cfgs.items():
        assert cfg.trainer.total_steps == budget.offline_updates * study_plan.POLICIES[name].updates_factor
        assert cfg.seed == 3
        assert cfg.trainer.eval_episodes == 0  # no development-episode evaluation in the study
        assert str(cfg.env.dataset).endswith("d.hdf5")
    assert cfgs["poir_features"].agent.online_env_steps == 0
    assert {str(c.resume) for c in cfgs.values()} == {"True"}  # a killed study resumes each run from its checkpoints
    # the converged baseline: BC-RNN-GMM as in the study, only trained 4x longer
    assert cfgs["bc_rnn_gmm_4x"].trainer.total_steps == 4 * budget.offline_updates
    assert cfgs["bc_rnn_gmm_4x"].agent == cfgs["bc_rnn_gmm"].agent
    assert study.parse_args(["run", "--task", "can", "--policies", "bc"]).policies == ["bc"]
    # online: BC gets POIR's online budget
    bc_on, poir_on = (compose(study.overrides_for(n, 3, tmp_path / "d.hdf5", budget, budget.online_steps))
                      for n in ("bc_features", "poir_features"))
    assert bc_on.agent.online_env_steps == poir_on.agent.online_env_steps == budget.online_steps
    assert bc_on.agent.online_updates_per_episode == poir_on.agent.online_updates_per_episode


def test_options_a_command_does_not_use_are_refused(capsys):
    """`fit` fits every seed and policy it finds and `report` tables every task: a --seed or --policies given
    to them would be silently ignored, so it is refused, naming the option; so is an abbreviation, and an option
    --quick would override."""
    for argv, said in ((["fit", "--task", "can", "--seed", "4"], "--seed not used by `fit`"),
                       (["fit", "--policies", "bc"], "--policies not used by `fit`"),
                       (["report", "--task", "can"], "--task not used by `report`"),
                       (["run", "--se", "4"], "unrecognized arguments: --se"),  # no abbreviations
                       (["run", "--quick", "--episodes", "3"], "--quick sets the smoke test's own --episodes")):
        with pytest.raises(SystemExit):
            study.parse_args(argv)
        assert said in capsys.readouterr().err
    assert study.parse_args(["fit", "--task", "can", "--runs", "r"]).task == "can"
    assert study.parse_args(["run", "--seed", "4", "--policies", "bc"]).seed == 4


def _rows():
    rows = []
    for seed in range(3):
        for policy, p in (("bc_features", 0.5), ("poir_features", 1.0), ("bc", 0.0)):
            k = int(10 * p)
            rows.append({"policy": policy, "axis": "all", "shift": 0.1, "seed": seed,
                         "success": [1] * k + [0] * (10 - k), "ms_per_step": 5.0, "seconds": 60.0})
    return rows


def test_report_tables_and_paired_comparisons(tmp_path):
    data = {"task": "Lift", "budget": {"demos": 30, "offline_updates": 2000, "online_steps": 2000,
                                       "online_updates_per_episode": 100, "episodes": 10}, "rows": _rows(),
            "machine": {"cores": 2}, "versions": {"rlkit2": "0"}}
    cells, table = study_report.success_table(data["rows"])
    assert cells == ["all:0.1"] and table["poir_features"]["all:0.1"].point == 1.0
    verdicts = {(c["a"], c["b"]): c["verdict"] for c in study_report.comparisons(data["rows"])}
    assert verdicts[("poir_features", "bc_features")] == "(no verdict: 3 of 5 seeds)"
    five = [{**r, "seed": r["seed"] + k} for k in (0, 3) for r in _rows() if r["seed"] + k < 5]
    verdicts = {(c["a"], c["b"]): c["verdict"] for c in study_report.comparisons(five)}
    assert verdicts[("poir_features", "bc_features")] == "wins" and verdicts[("bc_features", "bc")] == "wins"
    out = tmp_path / "results" / "study"
    out.mkdir(parents=True)
    (out / "lift.json").write_text(json.dumps(data))
    fit = {"task": "Lift", "rows": [{"seed": 0, "policy": "bc", "mse": 0.002, "mse_per_dim": [0.001, 0.003]}]}
    (out / "lift_fit.json").write_text(json.dumps(fit))  # `study fit`'s file sits beside it: tabled, not a task
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{study_report.BEGIN}\nold\n{study_report.END}\nrest\n")
    study_report.report(out, readme=readme)
    md = study_report.markdown(data)
    assert "| BC, features | 0.50 [0.33, 0.67] |" in md and (out / "lift.png").is_file()
    text = readme.read_text()
    assert text.startswith("intro\n" + study_report.BEGIN) and text.endswith(study_report.END + "\nrest\n")
    assert "old" not in text and md in text and "results/study/lift.png" in text
    assert "| BC, full obs | 1 | 0.0020 | s0: 0.0020 | 1: 0.003, 0: 0.001 |" in text


def test_held_out_episodes_differ_per_seed_and_from_development_episodes():
    from rlkit2.run.common import eval_seed

    held = [set(range(study.HELD_OUT + 1000 * s, study.HELD_OUT + 1000 * s + 200)) for s in range(10)]
    dev = set().union(*(range(eval_seed(s), eval_seed(s) + 200) for s in range(10)))
    assert all(not (a & b) for i, a in enumerate(held) for b in held[i + 1:])
    assert not set().union(*held) & dev


@pytest.mark.slow
def test_quick_study_runs_end_to_end(tmp_path):
    pytest.importorskip("robosuite")
    study.main(["run", "--quick", "--out", str(tmp_path / "res"), "--runs", str(tmp_path / "runs"),
                "--policies", "bc_features", "bc_features_online"])
    rows = json.loads((tmp_path / "res" / "lift.json").read_text())["rows"]
    assert {(r["policy"], r["axis"], r["shift"]) for r in rows} == {
        ("bc_features", "all", 0.0), ("bc_features", "all", 0.1), ("bc_features_online", "all", 0.1)}
    assert all(len(r["success"]) == 2 for r in rows)
    assert (tmp_path / "runs" / "lift" / "seed0" / "bc_features_online_all_s0.1" / "policy.pt").is_file()


def test_can_gets_the_same_design_with_its_own_features_and_budget(tmp_path):
    task = study_plan.TASKS["can"]
    feats = study.features(task)
    assert feats == [0, 1, 2, 9, 14, 15, 16, 21, 22]
    cfgs = {n: compose(study.overrides_for(n, 0, tmp_path / "d.hdf5", task.budget, task=task))
            for n in study_plan.OFFLINE}
    assert {str(c.env.task) for c in cfgs.values()} == {"PickPlaceCan"}
    assert {int(c.env.horizon) for c in cfgs.values()} == {250}
    assert list(cfgs["bc_features"].agent.obs_dims) == list(cfgs["poir_features"].agent.prior.obs_dims) == feats
    assert {n: int(c.trainer.total_steps) for n, c in cfgs.items()} == {
        n: task.budget.offline_updates * study_plan.POLICIES[n].updates_factor for n in cfgs}
    args = study.parse_args(["run", "--task", "can"])
    assert args.cells == task.cells and args.budget == task.budget


def test_a_finished_run_of_other_settings_is_refused_not_reused(tmp_path):
    from omegaconf import OmegaConf

    budget = study_plan.Budget()
    cfg = compose(study.overrides_for("bc_features", 0, tmp_path / "d.hdf5", budget))
    quick = compose(study.overrides_for("bc_features", 0, tmp_path / "d.hdf5", study_plan.Budget(offline_updates=100)))
    run_dir = tmp_path / "bc_features"
    assert not study._finished(run_dir, cfg)  # nothing there: train it
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "policy.pt").write_bytes(b"")
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(quick, resolve=True))
    with pytest.raises(SystemExit, match="trainer.total_steps: 100 -> 2000"):
        study._finished(run_dir, cfg)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    assert study._finished(run_dir, cfg)
    # a run finished before the study resumed its runs (saved with resume=false) is the same run
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.merge(cfg, {"resume": False})))
    assert study._finished(run_dir, cfg)


def test_reference_rows_are_evaluated_untrained_on_the_held_out_episodes(tmp_path):
    """The zero-action and scripted-expert rows train nothing and meet the seed's held-out episodes."""
    pytest.importorskip("robosuite")
    refs = {"zero_action", "expert"}
    assert refs <= set(study_plan.POLICIES) and not refs & set(study_plan.OFFLINE)
    study.main(["run", "--quick", "--out", str(tmp_path / "res"), "--runs", str(tmp_path / "runs"), "--seed", "3",
                "--policies", "zero_action", "expert"])
    rows = json.loads((tmp_path / "res" / "lift.json").read_text())["rows"]
    by = {(r["policy"], r["axis"], r["shift"]): r for r in rows}
    assert set(by) == {(p, "all", s) for p in ("zero_action", "expert") for s in (0.0, 0.1)}
    assert all(r["first_episode_seed"] == study.HELD_OUT + 3000 for r in rows)
    assert by[("zero_action", "all", 0.0)]["success"] == [0, 0]  # doing nothing never lifts the cube
    assert by[("expert", "all", 0.0)]["success"] == [1, 1]  # the demonstrator, nominal env
    assert not (tmp_path / "runs" / "lift" / "seed3").exists()  # no demos collected, nothing trained
    with pytest.raises(ValueError, match="unknown reference"):
        study.held_out(study_plan.TASKS["lift"], None, ("all", 0.0), 0, 1, "random")


def test_fit_check_tells_a_fitted_policy_from_an_unfitted_one(tmp_path):
    """`study fit`'s open-loop action error (rlkit2.demo_fit): BC trained on the demos reproduces their actions
    far more closely than the same network untrained, reading the demos with the env's observation keys, per
    action dim."""
    import rlkit2
    from experiments.imitation.study_fit import policy_demo_error
    from rlkit2.data.robomimic import Demo, read_robomimic, to_transitions
    from rlkit2.data.robomimic_writer import write_robomimic

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2))
    demos = []
    for _ in range(4):
        obs = rng.normal(size=(25, 3)).astype(np.float32)
        dones = np.zeros(25)
        dones[-1] = 1
        demos.append(Demo({"object": obs}, np.tanh(obs @ w).astype(np.float32), dones, dones))
    path = write_robomimic(tmp_path / "demos.hdf5", demos, {"env_name": "Lift"})
    arrays = to_transitions(read_robomimic(path, obs_keys=["object"]), ["object"])
    errors = {}
    for name, updates in (("untrained", 0), ("trained", 400)):
        torch.manual_seed(0)
        agent = rlkit2.make("bc", rlkit2.EnvSpec(3, 2), dict(arrays), hidden=[32, 32], batch_size=50)
        for _ in range(updates):
            agent.learner.step()
        rlkit2.save_policy(agent, tmp_path / name / "policy.pt")
        errors[name] = policy_demo_error(tmp_path / name, path, ["object"])
    assert errors["trained"]["transitions"] == 100 and len(errors["trained"]["mse_per_dim"]) == 2
    assert errors["trained"]["mse"] < 0.2 * errors["untrained"]["mse"]


def test_fit_keeps_the_rows_of_run_dirs_no_longer_on_disk(tmp_path, monkeypatch):
    """`study fit` accumulates like the study's results: refitted (seed, policy) rows replace theirs, rows whose
    run dirs are gone stay, and a file fitted on other observation keys is refused."""
    from experiments.imitation import study_fit

    def fake_error(run_dir, demos, obs_keys):
        return {"mse": 0.5, "mse_per_dim": [0.5], "demos": 1, "transitions": 2}

    monkeypatch.setattr(study_fit, "policy_demo_error", fake_error)
    runs, out = tmp_path / "runs", tmp_path / "out"
    for rel in ("lift/seed1/demos.hdf5", "lift/seed1/bc_rnn_gmm_4x/policy.pt"):
        (runs / rel).parent.mkdir(parents=True, exist_ok=True)
        (runs / rel).write_bytes(b"")
    keys = list(compose([f"experiment={study_plan.TASKS['lift'].presets['bc']}"]).env.obs_keys)
    old = {"task": "Lift", "obs_keys": keys, "rows": [
        {"seed": 0, "policy": "bc", "mse": 0.1, "mse_per_dim": [0.1]},
        {"seed": 1, "policy": "bc_rnn_gmm_4x", "mse": 0.9, "mse_per_dim": [0.9]}]}
    out.mkdir()
    (out / "lift_fit.json").write_text(json.dumps(old))
    data = study_fit.fit("lift", runs, out)
    got = {(r["seed"], r["policy"]): r["mse"] for r in data["rows"]}
    assert got == {(0, "bc"): 0.1, (1, "bc_rnn_gmm_4x"): 0.5}
    assert json.loads((out / "lift_fit.json").read_text())["rows"] == data["rows"]
    (out / "lift_fit.json").write_text(json.dumps({**old, "obs_keys": ["object"]}))
    with pytest.raises(SystemExit, match="other observation keys"):
        study_fit.fit("lift", runs, out)
