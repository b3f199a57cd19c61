"""The offline evidence grid (experiments/offline/grid.py) and its report: commands, rows, idempotence, tables."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from experiments.offline import grid, grid_plan, grid_results, published, report, report_cost, report_readme
from rlkit2.data import read_d4rl, write_d4rl
from rlkit2.data.d4rl import episode_returns
from rlkit2.data.scores import D4RL_REFERENCE, normalized_score
from tests.offline.test_offline_cli import tiny_hopper_file

POLICY_RETURN = 300.0


def default_cfg(tmp_path: Path, **kw) -> grid_plan.GridConfig:
    return grid_plan.GridConfig(agents=list(grid_plan.AGENTS),
                                datasets=[grid_plan.dataset_ref(d) for d in grid_plan.DATASETS],
                                runs_dir=tmp_path / "runs", results=tmp_path / "grid.json", **kw)


# --------------------------------------------------------------------------- the plan and its commands


def test_default_grid_plan():
    cfg = default_cfg(Path("/nonexistent"))
    runs = grid_plan.plan(cfg)
    assert len(runs) == len(set(runs)) == 6 * 5 + 6 * 3 * 2 + 5 * 3 * 4  # cql on the 3 hopper datasets only
    assert {r.dataset for r in runs if r.agent == "cql"} == {"hopper-v5-medium", "hopper-v5-medium-replay",
                                                             "hopper-v5-medium-expert"}
    assert {r.seed for r in runs if r.dataset == "hopper-v5-medium"} == set(range(5))
    assert {r.seed for r in runs if r.dataset == "walker2d-v5-medium"} == set(range(3))
    assert grid_plan.Run("iql", "hopper-v5-medium", 4).dir(Path("/r")) == Path("/r/hopper-v5-medium/iql/s4")


def test_shards_split_the_grid_into_disjoint_shares(tmp_path, capsys):
    whole = grid_plan.plan(default_cfg(Path("/nonexistent")))
    shares = [grid_plan.plan(default_cfg(Path("/nonexistent"), shard=(k, 3))) for k in range(3)]
    assert sorted(r for share in shares for r in share) == sorted(whole)  # every run in exactly one share
    assert [len(s) for s in shares] == [42, 42, 42]
    assert grid.main(["--dry-run", "--shard", "1/3", "--results", str(tmp_path / "g.json"),
                      "--runs-dir", str(tmp_path / "r")]) == 0
    assert "42 runs in shard 1/3 of the grid, 0 recorded, 42 to run" in capsys.readouterr().out
    for bad in ("3/3", "1", "-1/2", "a/b"):
        with pytest.raises(SystemExit):
            grid.parse_args(["--shard", bad])
    assert "--shard must be K/N" in capsys.readouterr().err


def test_dry_run_prints_the_commands_and_writes_nothing(tmp_path, capsys):
    results = tmp_path / "grid.json"
    assert grid.main(["--dry-run", "--jobs", "2", "--results", str(results), "--runs-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    cmds = [line for line in out.splitlines() if " -m hydra/launcher=joblib " in line]
    assert len(cmds) == 3 and not results.exists() and not (tmp_path / "r").exists()
    for c in cmds:
        for token in ("hydra.launcher.n_jobs=2", "trainer.total_steps=100000", "trainer.eval_every=10000",
                      "trainer.eval_episodes=10", "trainer.threads=1", "resume=true",
                      f"hydra.sweep.dir={tmp_path / 'r'}", "'hydra.sweep.subdir=${env.id}/${agent.name}/s${seed}'"):
            assert token in c, (token, c)
    assert "agent=qsarsa_ac,qsarsa_ac2,td3_bc,iql,offline_bc,cql env.id=hopper-v5-medium seed=0,1,2,3,4" in out
    assert ("agent=qsarsa_ac,qsarsa_ac2,td3_bc,iql,offline_bc env.id=walker2d-v5-medium,walker2d-v5-medium-replay,"
            "halfcheetah-v5-medium,halfcheetah-v5-medium-replay seed=0,1,2") in out
    assert "126 runs in the grid, 0 recorded, 126 to run in 3 multirun(s)" in out


def test_blocks_cover_the_pending_runs_exactly():
    cfg = default_cfg(Path("/nonexistent"))
    runs = grid_plan.plan(cfg)
    rng = random.Random(0)
    for frac in (0.0, 0.2, 0.5, 0.9):
        pending = [r for r in runs if rng.random() >= frac]
        covered = [r for b in grid_plan.blocks(pending, cfg.datasets) for r in b.runs]
        assert sorted(covered) == sorted(pending)  # every pending run once, nothing recorded again


def test_run_row_scores_the_last_three_evaluations(tmp_path):
    cfg = grid_plan.GridConfig(agents=["td3_bc"], datasets=[grid_plan.Dataset("hopper-v5-medium", "hopper-v5-medium")],
                               updates=40, eval_every=10, runs_dir=tmp_path, results=tmp_path / "g.json")
    run = grid_plan.Run("td3_bc", "hopper-v5-medium", 0)
    d = run.dir(tmp_path)
    d.mkdir(parents=True)
    rows = [{"step": 10, "time/steps_per_s": 5.0}, {"step": 20, "time/steps_per_s": 10.0}]
    rows += [{"step": s, "eval/normalized_score": float(s), "eval/normalized_score_v5": 2.0 * s} for s in (10, 20, 30)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "policy.pt").write_bytes(b"")
    assert grid_results.run_row(run, cfg) is None  # no evaluation at step 40 yet: unfinished
    with (d / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 40, "eval/normalized_score": 40.0, "eval/normalized_score_v5": 80.0}) + "\n")
    row = grid_results.run_row(run, cfg)
    assert row["score"] == pytest.approx(30.0) and row["score_v5"] == pytest.approx(60.0)  # mean of 20, 30, 40
    assert row["evals"] == [[10, 10.0], [20, 20.0], [30, 30.0], [40, 40.0]] and row["score_evals"] == 3
    assert row["wall_s"] == pytest.approx(10 / 5 + 10 / 10) and row["updates_per_s"] == pytest.approx(40 / 3)
    assert {"host", "cpu"} <= set(row["machine"]) and {"torch", "numpy", "rlkit2"} <= set(row["versions"])


def test_results_of_another_budget_are_refused(tmp_path):
    data = grid_results.load_results(tmp_path / "g.json", {"updates": 40})
    grid_results.save_results(tmp_path / "g.json", data)
    with pytest.raises(SystemExit, match="another budget"):
        grid_results.load_results(tmp_path / "g.json", {"updates": 50})


def test_published_rows_are_marked():
    rows = published.published_rows("hopper-v5-medium-expert")
    assert [r[0] for r in rows] == ["TD3+BC", "IQL", "CQL", "BC"]
    assert all("not comparable 1:1: generated v5 data" in r[3] and "hopper-medium-expert-v2" in r[3] for r in rows)
    assert published.published_rows("Hopper-v5") == []
    assert "evaluated on the v5 envs" in published.published_rows("walker2d-medium-v2")[0][3]


# --------------------------------------------------------------------------- a tiny grid, end to end


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """A 600-row Hopper file under a generated name, with the behaviour-policy metadata `rlkit2-data make` writes."""
    d = tmp_path_factory.mktemp("data")
    raw = read_d4rl(tiny_hopper_file(d / "raw.hdf5"))
    mean_return = float(np.mean(episode_returns(raw.arrays["rewards"], raw.arrays["terminals"],
                                                raw.arrays["timeouts"])))
    return write_d4rl(d / "hopper-v5-medium.hdf5", raw.arrays,
                      metadata={"env_id": "Hopper-v5", "generated_by": "tests", "kind": "medium",
                                "policy_return": POLICY_RETURN, "transitions": 600, "seed": 0,
                                "chunk_episodes": 64, "dataset_mean_episode_return": mean_return})


def test_the_report_compares_q_sarsa_with_td3_bc_and_every_agent_with_bc():
    scores = {"qsarsa_ac2": [40.0, 41.0, 42.0], "td3_bc": [30.0, 31.0, 32.0], "offline_bc": [35.0, 36.0, 37.0],
              "iql": [20.0, 45.0, 60.0]}
    data = {"runs": [{"agent": a, "dataset": "hopper-v5-medium", "seed": i, "score": x}
                     for a, xs in scores.items() for i, x in enumerate(xs)]}
    assert report.comparison_pairs(["qsarsa_ac2", "td3_bc", "iql", "offline_bc"]) == [
        ("qsarsa_ac2", "td3_bc"), ("qsarsa_ac2", "offline_bc"), ("td3_bc", "offline_bc"), ("iql", "offline_bc")]
    rows = {line.split(" | ")[0].strip("| "): line for line in
            report.comparison_table(data, ["qsarsa_ac2", "td3_bc", "iql", "offline_bc"], ["hopper-v5-medium"],
                                    2000, 0) if line.startswith("| ") and "−" in line.split(" | ")[0]}
    assert rows["qsarsa_ac2 − td3_bc"].endswith("| +10.0 [8.7, 11.3] | 3 vs 3 | higher |")
    assert rows["td3_bc − offline_bc"].endswith("| lower |")
    assert rows["iql − offline_bc"].endswith("| no clear difference |")
    assert report.comparison_table(data, ["iql"], ["hopper-v5-medium"], 2000, 0) == []  # nothing to compare
    assert report.comparison_pairs(["qsarsa_ac", "qsarsa_ac2"]) == [("qsarsa_ac", "qsarsa_ac2")]  # kappa = 0
    # aggregates per kind of data too, so a kind not every agent has run does not hide the others' IQM
    sets = report.dataset_sets(["hopper-v5-medium", "walker2d-v5-medium", "hopper-v5-medium-replay"])
    assert [(k, ds) for k, _, ds in sets] == [
        ("", ["hopper-v5-medium", "walker2d-v5-medium", "hopper-v5-medium-replay"]),
        ("_medium", ["hopper-v5-medium", "walker2d-v5-medium"]), ("_medium-replay", ["hopper-v5-medium-replay"]),
        ("_hopper", ["hopper-v5-medium", "hopper-v5-medium-replay"])]
    assert [k for k, _, _ in report.dataset_sets(["hopper-v5-medium", "/data/x.hdf5"])] == ["", "_hopper"]
    # the overview says what its behaviour column is, per kind of data shown, in the reference rows' own words
    refs = {("hopper-v5-medium", "behaviour"): {"note": "metadata: the behaviour policy's return"},
            ("walker2d-v5-medium", "behaviour"): {"note": "metadata: the behaviour policy's return"},
            ("hopper-v5-medium-replay", "behaviour"): {"note": "metadata: the medium snapshot's return"}}
    assert report.behaviour_column_note(refs, ["hopper-v5-medium", "walker2d-v5-medium", "hopper-v5-medium-replay"]) \
        == ["behaviour (greedy), from each file's metadata: medium: the behaviour policy's return; "
            "medium-replay: the medium snapshot's return.", ""]
    assert report.behaviour_column_note({}, ["hopper-v5-medium"]) == []  # D4RL's files: no note to give
    one = {"runs": [r for r in data["runs"] if r["agent"] != "td3_bc" or r["seed"] == 0]}
    rows = report.comparison_table(one, ["td3_bc", "offline_bc"], ["hopper-v5-medium"], 2000, 0)
    assert rows[-2].endswith("| 1 vs 3 | too few seeds |")  # one seed gives no interval


def test_an_agent_with_one_seed_gets_a_score_but_no_interval():
    # a bootstrap over one seed per dataset is that seed's value again: a zero-width "CI" would read as certainty
    runs = [{"agent": a, "dataset": d, "seed": s, "score": 10.0 * (s + 1) + len(d)}
            for a, seeds in (("qsarsa_ac2", [0]), ("td3_bc", [0, 1, 2])) for s in seeds
            for d in ("hopper-v5-medium", "walker2d-v5-medium")]
    data = {"runs": runs}
    agents, datasets = ["qsarsa_ac2", "td3_bc"], ["hopper-v5-medium", "walker2d-v5-medium"]
    rows = {line.split(" | ")[0].strip("| "): line
            for line in report.dataset_tables(data, agents, datasets, 500, 0) if line.startswith("| ")}
    assert "| — (1 seed) | 1 |" in rows["qsarsa_ac2"]
    assert "| [" in rows["td3_bc"] and "| 3 |" in rows["td3_bc"]
    iqm: dict[str, str] = {}  # the IQM table's rows (the probability-of-improvement table follows it)
    for line in report.aggregate_tables(data, agents, datasets, 500, 0):
        if line.startswith("| "):
            iqm.setdefault(line.split(" | ")[0].strip("| "), line)
    assert "| — (1 seed) | 2 |" in iqm["qsarsa_ac2"]
    assert "| — (1 seed)" not in iqm["td3_bc"]
    # a difference has an interval when either side has seeds to resample, none when both hold one
    one_bc = {"runs": [*runs, {"agent": "offline_bc", "dataset": "hopper-v5-medium", "seed": 0, "score": 5.0}]}
    diffs = [line for line in report.comparison_table(one_bc, ["qsarsa_ac2", "td3_bc", "offline_bc"],
                                                      ["hopper-v5-medium"], 500, 0) if " vs " in line]
    assert any("| 1 vs 1 |" in line and "— (1 seed)" in line for line in diffs)
    assert all("— (1 seed)" not in line for line in diffs if "| 1 vs 1 |" not in line)


def test_the_report_tells_apart_collections_made_with_the_same_settings():
    """Same generation settings, other rows (made on another CPU): the rows' mean return tells them apart."""
    settings = {"transitions": 1000000, "seed": 0, "behaviour_policies_sha256": "ab" * 32, "chunk_episodes": None}
    runs = [{"agent": "td3_bc", "dataset": "walker2d-v5-medium", "seed": s, "score": 50.0, "wall_s": 10.0,
             "data": {**settings, "dataset_mean_episode_return": ret}} for s, ret in ((0, 1604.59), (1, 1597.31))]
    lines = report_cost.cost_and_provenance({"runs": runs}, ["td3_bc"])
    data_lines = [line for line in lines if line.startswith("- walker2d-v5-medium:")]
    assert len(data_lines) == 2 and all("trained on different collections" in line for line in data_lines)
    assert any("mean episode return 1604.59" in line for line in data_lines)
    # a comparison between agents that trained on different collections says so
    bc = [{**r, "agent": "offline_bc", "score": 40.0 + r["seed"], "data": runs[0]["data"]} for r in runs]
    table = report.comparison_table({"runs": [*runs, *bc]}, ["td3_bc", "offline_bc"], ["walker2d-v5-medium"],
                                    2000, 0)
    assert table[-2].endswith("| higher (runs trained on different collections of the dataset) |")
    same = [{**r, "data": runs[0]["data"]} for r in runs]
    table = report.comparison_table({"runs": [*same, *bc]}, ["td3_bc", "offline_bc"], ["walker2d-v5-medium"],
                                    2000, 0)
    assert table[-2].endswith("| higher |")


def test_tiny_grid_end_to_end(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(grid, "POLL_S", 2.0)  # record finished runs while the multirun still runs
    results, runs_dir = tmp_path / "results" / "grid.json", tmp_path / "runs"
    args = ["--agents", "td3_bc", "iql", "--datasets", str(tiny_dataset), "--seeds", "2", "--updates", "40",
            "--eval-every", "20", "--eval-episodes", "2", "--jobs", "2", "--runs-dir", str(runs_dir),
            "--results", str(results)]
    assert grid.main(args) == 0
    data = json.loads(results.read_text())
    keys = sorted((r["agent"], r["dataset"], r["seed"]) for r in data["runs"])
    assert keys == sorted((a, "hopper-v5-medium", s) for a in ("td3_bc", "iql") for s in (0, 1))
    refs = {r["kind"]: r for r in data["references"]}
    for r in data["runs"]:
        assert [e[0] for e in r["evals"]] == [20, 40] and r["updates"] == 40 and r["score_evals"] == 2
        assert r["score"] == pytest.approx(np.mean([e[1] for e in r["evals"]]))
        assert r["wall_s"] > 0 and r["updates_per_s"] > 0 and r["versions"]["torch"]
        assert Path(r["run_dir"]) == runs_dir / "hopper-v5-medium" / r["agent"] / f"s{r['seed']}"
        assert r["data"] == {"transitions": 600, "seed": 0, "behaviour_policies_sha256": None, "chunk_episodes": 64,
                             "dataset_mean_episode_return": refs["dataset"]["return"]}
    refs = {r["kind"]: r for r in data["references"]}
    assert len(refs["zero_action"]["scores"]) == 2 and refs["zero_action"]["episodes"] == 2
    assert all(np.isfinite(refs["zero_action"]["scores"]))
    assert refs["behaviour"]["score"] == pytest.approx(normalized_score(POLICY_RETURN, *D4RL_REFERENCE["hopper"]))
    assert refs["dataset"]["score"] == pytest.approx(normalized_score(refs["dataset"]["return"],
                                                                      *D4RL_REFERENCE["hopper"]))
    assert len(data["sessions"]) == 1 and data["sessions"][0]["finished"] == 4 and data["sessions"][0]["seconds"] > 0
    capsys.readouterr()

    # rerun: nothing is launched, nothing duplicated, the metrics untouched
    metrics = sorted(runs_dir.rglob("metrics.jsonl"))
    stamps = [p.stat().st_mtime_ns for p in metrics]
    assert grid.main(args) == 0
    assert "4 recorded, 0 to run in 0 multirun(s)" in capsys.readouterr().out
    assert json.loads(results.read_text()) == data
    assert [p.stat().st_mtime_ns for p in metrics] == stamps

    # a run finished on disk but missing from the JSON (a grid killed after training) is recorded, not re-run
    dropped = {**data, "runs": [r for r in data["runs"] if (r["agent"], r["seed"]) != ("iql", 1)]}
    results.write_text(json.dumps(dropped))
    assert grid.main(args) == 0
    assert "recorded 1 run(s) finished earlier" in capsys.readouterr().out
    again = json.loads(results.read_text())
    assert len(again["runs"]) == 4 and [p.stat().st_mtime_ns for p in metrics] == stamps

    # runs on another collection of the dataset (same settings, other rows: another machine) are not mixed in:
    # one run row or the dataset reference row of another collection is enough; rows without one are not held
    # against it; the message names the file and what differs
    ret = refs["dataset"]["return"]
    unknown = [{**again["runs"][0], "data": {}}, {**again["runs"][1], "data": {"error": "OSError: gone"}}]
    assert grid_results.check_one_collection({**again, "runs": unknown + again["runs"][2:]},
                                             grid.parse_args(args)[0]) is None
    other = {**again, "runs": [{**again["runs"][0], "data": {**again["runs"][0]["data"],
                                                             "dataset_mean_episode_return": 1.5}}, *again["runs"][1:]]}
    other_ref = {**again, "references": [{**r, "return": 1.5} if r["kind"] == "dataset" else r
                                         for r in again["references"]]}
    for bad in (other, other_ref):
        results.write_text(json.dumps(bad))
        with pytest.raises(SystemExit, match=f"another collection of it than {tiny_dataset} "
                                             f"\\(dataset_mean_episode_return 1.5 vs {ret}\\)"):
            grid.main(args)
        assert json.loads(results.read_text()) == bad  # refused before anything was written
    results.write_text(json.dumps(again))
    # a sitting on another collection sharing the file is refused when its row is merged in
    with pytest.raises(SystemExit, match="runs of hopper-v5-medium on two collections"):
        grid_results.save_results(results, {**again, "runs": [*again["runs"][1:], other["runs"][0]]})
    assert json.loads(results.read_text()) == again

    # the report: tables with every row, the profile plot, the README section spliced in place
    readme = tmp_path / "README.md"
    readme.write_text("# Notes\n\nbefore\n\n<!-- grid:start -->\nold\n<!-- grid:end -->\n\nafter\n")
    assert report.main(["--results", str(results), "--readme", str(readme), "--reps", "500"]) == 0
    md = (results.parent / "grid.md").read_text()
    section = md[md.index("### hopper-v5-medium"):md.index("## Across datasets")]
    for row in ("| td3_bc |", "| iql |", "| zero action |", "| behaviour policy (greedy) |", "| dataset episodes |",
                "| TD3+BC (published) |",
                "| IQL (published) |", "| CQL (published) |", "| BC (published) |"):
        assert row in section, row
    assert "not comparable 1:1: generated v5 data" in section
    assert "behaviour (greedy), from each file's metadata: medium: the behaviour policy's return." in md
    td3 = [r["score"] for r in again["runs"] if r["agent"] == "td3_bc"]
    assert f"| td3_bc | {np.mean(td3):.1f} |" in section
    assert "| iql | " in md[md.index("## Across datasets"):] and "P(> td3_bc)" in md
    assert (results.parent / "grid_profile.png").stat().st_size > 1000
    assert "Library versions" in md and "torch" in md
    text = readme.read_text()
    assert text.startswith("# Notes\n\nbefore\n\n<!-- grid:start -->") and text.endswith("<!-- grid:end -->\n\nafter\n")
    assert "old" not in text and "##### hopper-v5-medium" in text and "](results/grid_profile.png)" in text
    assert report.main(["--results", str(results), "--readme", str(readme), "--reps", "500"]) == 0
    assert readme.read_text() == text  # splicing again changes nothing


def test_named_datasets_share_one_multirun(tiny_dataset, tmp_path, capsys):
    """Datasets by name (found through --data-dir, as the runs find them) with the same agents and seeds go into
    one sweep over env.id; each run still gets its own <dataset>/<agent>/s<seed> dir."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("hopper-v5-medium", "hopper-v5-medium-replay"):
        (data_dir / f"{name}.hdf5").write_bytes(tiny_dataset.read_bytes())
    results, runs_dir = tmp_path / "grid.json", tmp_path / "runs"
    assert grid.main(["--agents", "td3_bc", "--datasets", "hopper-v5-medium", "hopper-v5-medium-replay",
                      "--data-dir", str(data_dir), "--seeds", "1", "--updates", "20", "--eval-every", "20",
                      "--eval-episodes", "1", "--runs-dir", str(runs_dir), "--results", str(results),
                      "--no-references"]) == 0
    out = capsys.readouterr().out
    assert "in 1 multirun(s)" in out and "env.id=hopper-v5-medium,hopper-v5-medium-replay" in out
    data = json.loads(results.read_text())
    assert sorted(r["dataset"] for r in data["runs"]) == ["hopper-v5-medium", "hopper-v5-medium-replay"]
    assert all(Path(r["run_dir"]) == runs_dir / r["dataset"] / "td3_bc" / "s0" for r in data["runs"])
    assert data["references"] == []


def test_two_sittings_sharing_a_results_file_keep_each_others_rows(tmp_path):
    """Each sitting holds its own copy of the results; saving adopts the rows the other wrote meanwhile."""
    path = tmp_path / "grid.json"
    row = {"dataset": "d", "score": 1.0}
    a = grid_results.load_results(path, {"updates": 10})
    b = grid_results.load_results(path, {"updates": 10})
    a["runs"].append({**row, "agent": "td3_bc", "seed": 0})
    grid_results.save_results(path, a)
    b["runs"].append({**row, "agent": "iql", "seed": 0})
    b["references"].append({"dataset": "d", "kind": "dataset", "score": 2.0})
    grid_results.save_results(path, b)
    a["runs"].append({**row, "agent": "td3_bc", "seed": 1})
    grid_results.save_results(path, a)
    saved = json.loads(path.read_text())
    assert {(r["agent"], r["seed"]) for r in saved["runs"]} == {("td3_bc", 0), ("td3_bc", 1), ("iql", 0)}
    assert [r["kind"] for r in saved["references"]] == ["dataset"]


def test_a_stale_copy_of_a_row_never_undoes_a_newer_one(tmp_path):
    """Sitting B read the file before A redid a reference row with more seeds; B's later save keeps A's row."""
    path = tmp_path / "grid.json"
    old = {"dataset": "d", "kind": "zero_action", "seeds": 1, "updated": "2026-12-01T10:00:00"}
    first = grid_results.load_results(path, {"updates": 10})
    first["references"].append(old)
    grid_results.save_results(path, first)
    a = grid_results.load_results(path, {"updates": 10})
    b = grid_results.load_results(path, {"updates": 10})
    a["references"] = [{**old, "seeds": 3, "updated": "2026-12-02T17:00:00"}]
    grid_results.save_results(path, a)
    b["runs"].append({"agent": "iql", "dataset": "d", "seed": 0, "score": 1.0, "recorded": "2026-12-02T17:05:00"})
    grid_results.save_results(path, b)  # b still holds the 1-seed row
    saved = json.loads(path.read_text())
    assert [r["seeds"] for r in saved["references"]] == [3] and len(saved["runs"]) == 1


def test_shards_started_together_keep_both_sittings_and_count_their_time_once(tmp_path):
    path = tmp_path / "grid.json"
    sitting = {"started": "2026-12-02T16:00:00", "seconds": 3600.0, "launched": 1, "jobs": 1,
               "machine": {"host": "vm"}}
    a = grid_results.load_results(path, {"updates": 10})
    b = grid_results.load_results(path, {"updates": 10})
    a["sessions"].append({**sitting, "shard": "0/2"})
    grid_results.save_results(path, a)
    b["sessions"].append({**sitting, "shard": "1/2"})
    grid_results.save_results(path, b)
    sessions = json.loads(path.read_text())["sessions"]
    assert sorted(s["shard"] for s in sessions) == ["0/2", "1/2"]
    later = {**sitting, "started": "2026-12-02T16:30:00", "shard": "0/1"}  # overlaps the last 30 min
    assert report_cost.covered_seconds(sessions) == 3600.0
    assert report_cost.covered_seconds([*sessions, later]) == 5400.0


def test_an_ablation_file_joins_the_grid_tables_under_what_it_changes(tmp_path):
    """`report --with ablation.json`: the variant's runs appear as `agent (overrides, budget)`, compared with the
    agent they vary, in a README section of their own; a differently scored file is refused."""
    grid_key = {"updates": 100, "last_evals": 3, "score_key": "eval/normalized_score", "overrides": []}
    base = {"grid": grid_key, "runs": [{"agent": a, "dataset": "hopper-v5-medium", "seed": s, "score": x + s}
                                       for a, x in (("qsarsa_ac2", 40.0), ("td3_bc", 30.0)) for s in range(3)]}
    variant = {"grid": {**grid_key, "updates": 120, "overrides": ["agent.freeze_q_sarsa=true"]},
               "runs": [{"agent": "qsarsa_ac2", "dataset": "hopper-v5-medium", "seed": s, "score": 20.0 + s}
                        for s in range(3)]}
    merged = report.with_variants(base, [("ablation_frozen.json", variant)])
    label = "qsarsa_ac2 (freeze_q_sarsa=true, 120 updates)"
    assert {r["agent"] for r in merged["runs"]} == {"qsarsa_ac2", "td3_bc", label}
    agents = ["qsarsa_ac2", "td3_bc", label]
    assert (label, "qsarsa_ac2") in report.comparison_pairs(agents)
    rows = [line for line in report.comparison_table(merged, agents, ["hopper-v5-medium"], 2000, 0)
            if line.startswith(f"| {label} − qsarsa_ac2 ")]
    assert len(rows) == 1 and "| -20.0 " in rows[0] and rows[0].endswith("| lower |")
    eta = {**variant, "grid": {**grid_key, "overrides": ["agent.eta=1.0"]}}  # a dotted value keeps its dot
    assert report.with_variants(base, [("ablation_eta1.json", eta)])["runs"][-1]["agent"] == "qsarsa_ac2 (eta=1.0)"
    with pytest.raises(SystemExit, match="scored otherwise"):
        report.with_variants(base, [("other.json", {**variant, "grid": {**variant["grid"], "last_evals": 1}})])
    (tmp_path / "grid.json").write_text(json.dumps(base))
    (tmp_path / "ablation_frozen.json").write_text(json.dumps(variant))
    readme = tmp_path / "README.md"
    readme.write_text("# Notes\n\n<!-- grid:start -->\nthe grid\n<!-- grid:end -->\n")
    report.main(["--results", str(tmp_path / "grid.json"), "--with", str(tmp_path / "ablation_frozen.json"),
                 "--reps", "200", "--readme", str(readme)])
    md = (tmp_path / "grid+ablation_frozen.md").read_text()
    assert "from `grid.json` with `ablation_frozen.json`" in md and label in md
    text = readme.read_text()  # its own section, appended; the grid's left as it was
    assert text.startswith("# Notes\n\n<!-- grid:start -->\nthe grid\n<!-- grid:end -->\n")
    assert "<!-- grid+ablation_frozen:start -->" in text and text.endswith("<!-- grid+ablation_frozen:end -->\n")
    assert label in text[text.index("<!-- grid+ablation_frozen:start -->"):]


def test_splice_owns_only_its_section(tmp_path):
    """Each report rewrites the text between its own markers; the other report's section and the hand-written
    text stay byte for byte; a report without markers yet gets a headed section appended."""
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- grid:start -->\nA\n<!-- grid:end -->\nmiddle\n<!-- other:start -->\nB\n"
                      "<!-- other:end -->\nend\n")
    report_readme.splice(readme, "A2\n", "grid")
    assert readme.read_text() == ("intro\n<!-- grid:start -->\nA2\n<!-- grid:end -->\nmiddle\n<!-- other:start -->\n"
                                  "B\n<!-- other:end -->\nend\n")
    report_readme.splice(readme, "C", "third")
    appended = "end\n\n### Evidence grid: third\n\n<!-- third:start -->\nC\n<!-- third:end -->\n"
    assert readme.read_text().endswith(appended)
    assert [f.name for f in tmp_path.iterdir()] == ["README.md"]  # written atomically: no temporary left


def test_the_overview_says_how_many_seeds_each_cell_has():
    """Most cells' seed count is said once above the table; a cell with another count carries its own."""
    runs = [{"agent": a, "dataset": d, "seed": s, "score": float(s)}
            for a, d, n in (("td3_bc", "hopper-v5-medium", 5), ("td3_bc", "walker2d-v5-medium", 3),
                            ("iql", "hopper-v5-medium", 3), ("iql", "walker2d-v5-medium", 3))
            for s in range(n)]
    lines = report.overview_table({"runs": runs}, ["td3_bc", "iql"], ["hopper-v5-medium", "walker2d-v5-medium"])
    assert "(3 seeds a cell, other counts in parentheses; details and CIs below)" in lines[2]
    assert "| hopper-v5-medium | 2.0 (5) | 1.0 | — | — | — |" in lines
    assert "| walker2d-v5-medium | 1.0 | 1.0 | — | — | — |" in lines
    even = report.overview_table({"runs": [r for r in runs if r["seed"] < 3]}, ["td3_bc"], ["hopper-v5-medium"])
    assert "(3 seeds a cell; details and CIs below)" in even[2] and "| hopper-v5-medium | 1.0 | — | — | — |" in even
