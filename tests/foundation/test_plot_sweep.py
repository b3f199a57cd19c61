"""Learning-curve plots and sweep summaries a person would look at: markers, reference lines, CI bands across
seeds, a losses panel, a visible single evaluation, short legends, honest y-limits; an unknown sweep key is an
error that leaves the old summary alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from rlkit2.plotting import (  # noqa: E402
    curves_figure,
    mean_ci95,
    plot_runs,
    score_limits,
    setting_labels,
    t_quantile_975,
    wrap_label,
)
from rlkit2.sweep import main as sweep_main  # noqa: E402


def fake_run(root: Path, name: str, overrides: list[str], scores: list[tuple[int, float]],
             losses: bool = True) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    rows = []
    for step, score in scores:
        if losses:
            rows.append({"step": step, "train/critic_loss": 1.0 / (1 + step), "train/actor_loss": -float(step),
                         "train/q_mean": 3.0})
        rows.append({"step": step, "eval/normalized_score": score, "eval/return": 10 * score})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def _labelled_lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}


def test_references_markers_ci_band_and_losses_panel(tmp_path):
    runs = [fake_run(tmp_path, f"alpha=2.5,seed={s}", ["agent.alpha=2.5", f"seed={s}"],
                     [(1000, 6.478 + 0.01 * s), (2000, 6.49 + 0.003 * s), (3000, 6.497 - 0.002 * s)])
            for s in range(3)]
    runs.append(fake_run(tmp_path, "alpha=5,seed=0", ["agent.alpha=5", "seed=0"], [(1000, 6.0), (3000, 6.1)]))
    refs = {"behaviour policy": 6.5, "zero-action": 1.2}
    fig = curves_figure(runs, references=refs, title="t")
    score_ax, *loss_axes = fig.axes
    lines = _labelled_lines(score_ax)
    # reference levels: horizontal lines at their values, named in the legend
    assert np.allclose(lines["behaviour policy (6.5)"].get_ydata(), 6.5)
    assert np.allclose(lines["zero-action (1.2)"].get_ydata(), 1.2)
    # one curve a setting, with markers, labelled by the differing override only (shortened key)
    assert lines["alpha=2.5 (3\u00a0seeds)"].get_marker() == "o" and lines["alpha=5 (1\u00a0run)"].get_marker() == "o"
    np.testing.assert_allclose(lines["alpha=2.5 (3\u00a0seeds)"].get_ydata()[0], np.mean([6.478, 6.488, 6.498]))
    # a CI band (PolyCollection) for the 3-seed setting, and the method said on the figure
    assert len(score_ax.collections) == 1 and "t-interval" in score_ax.get_title()
    # the y-axis includes the reference levels (no zoom into 6.478 -> 6.497)
    lo, hi = score_ax.get_ylim()
    assert lo < 1.2 and hi > 6.5
    # losses beside: one small panel a train/*loss* key (not q_mean), a line a setting; legend below the axes
    assert [ax.get_title(loc="left") for ax in loss_axes] == ["train/actor_loss (mean over seeds)",
                                                               "train/critic_loss (mean over seeds)"]
    assert all(len(ax.get_lines()) == 2 for ax in loss_axes)
    assert score_ax.get_legend().get_bbox_to_anchor().y0 < score_ax.bbox.y0  # below the panel, not over the data
    out = plot_runs(runs, tmp_path / "curves.png", references=refs)
    assert out.stat().st_size > 5000


def test_one_evaluation_shows_its_point(tmp_path):
    run = fake_run(tmp_path, "single", [], [(500, 42.0)], losses=False)
    fig = curves_figure([run])
    (ax,) = fig.axes  # no train/* losses: no losses panel
    (line,) = [ln for ln in ax.get_lines()]
    assert line.get_marker() == "o" and list(line.get_ydata()) == [42.0]
    assert line.get_label() == "1\u00a0run"  # not "all (n=1)"
    lo, hi = ax.get_ylim()
    assert lo < 42 < hi and hi - lo >= 0.1 * 42  # a minimum span relative to the value
    assert plot_runs([run], tmp_path / "one.png").stat().st_size > 2000


def test_unknown_key_lists_keys_present(tmp_path):
    run = fake_run(tmp_path, "r", [], [(1, 1.0)])
    with pytest.raises(ValueError, match=r"eval/retrun.*eval/normalized_score"):
        curves_figure([run], key="eval/retrun")


def test_limits_labels_and_interval():
    lo, hi = score_limits([6.478, 6.497])
    assert hi - lo >= 0.1 * 6.497  # noise stays noise
    assert score_limits([0.2, 0.3], "eval/success_rate") == pytest.approx((-0.05, 1.05))
    lo, hi = score_limits([6.478, 6.497], "eval/normalized_score")  # 0 = the random policy's level
    assert lo < 0 < 6.497 < hi
    long = "actor_hidden=[256,256,256], critic_hidden=[256,256,256], alpha=2.5, normalize_obs=true, tau=0.005"
    wrapped = wrap_label(long)
    assert wrapped.count("\n") == 2 and all(len(ln) <= 34 for ln in wrapped.splitlines()) and wrapped.endswith("…")
    assert t_quantile_975(2) == pytest.approx(4.303) and t_quantile_975(1000) == pytest.approx(1.962, abs=1e-3)
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 * 1.0 / np.sqrt(3))
    assert np.isnan(mean_ci95([1.0])[1])


def test_setting_labels_keep_only_differing_overrides(tmp_path):
    a = fake_run(tmp_path, "a", ["agent=td3_bc", "agent.alpha=1", "trainer.total_steps=10", "seed=0"], [(1, 1.0)])
    b = fake_run(tmp_path, "b", ["agent=td3_bc", "agent.alpha=2", "trainer.total_steps=10", "seed=1"], [(1, 1.0)])
    assert setting_labels([a, b]) == {a: "alpha=1", b: "alpha=2"}


def test_plot_cli_refs_and_errors(tmp_path, capsys):
    from rlkit2.plotting import main as plot_main

    run = fake_run(tmp_path, "r", [], [(1, 1.0), (2, 2.0)])
    plot_main([str(run), "--out", str(tmp_path / "c.png"), "--ref", "behaviour policy=1.5"])
    assert (tmp_path / "c.png").is_file()
    with pytest.raises(SystemExit):
        plot_main([str(run), "--key", "eval/retrun", "--out", str(tmp_path / "d.png")])
    assert "keys present" in capsys.readouterr().err and not (tmp_path / "d.png").exists()


def test_sweep_unknown_key_errors_and_keeps_the_summary(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for s in range(3):
        fake_run(sweep, f"seed={s}", [f"seed={s}"], [(100, 1.0 + s), (200, 2.0 + s)])
    sweep_main([str(sweep), "--key", "eval/return"])
    summary = json.loads((sweep / "summary.json").read_text())
    (row,) = summary["settings"].values()
    assert row["n"] == 3 and row["mean"] == pytest.approx(30.0)
    assert row["ci95"] == pytest.approx(4.303 * 10.0 / np.sqrt(3)) and "t-interval" in summary["ci"]
    before = {p.name: p.read_bytes() for p in sweep.glob("summary.*")}
    assert set(before) == {"summary.json", "summary.md", "summary.png"}
    with pytest.raises(SystemExit) as e:
        sweep_main([str(sweep), "--key", "eval/retrun"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "eval/retrun" in err and "eval/return" in err and "eval/normalized_score" in err
    assert {p.name: p.read_bytes() for p in sweep.glob("summary.*")} == before
    assert not list(sweep.glob(".summary*"))


def test_rlkit2_plot_prints_final_scores_beside_the_runs_references(tmp_path, capsys):
    from rlkit2.plotting import main as plot_main

    refs = {"zero action": {"key": "eval/normalized_score", "level": 6.0, "return": 180.0, "note": ""},
            "behaviour policy": {"key": "eval/normalized_score", "level": 32.5, "return": 1042.0, "note": ""}}
    runs = []
    for agent, finals in (("bc", (40.0, 44.0)), ("qsarsa_ac2", (50.0, 60.0))):
        for seed, final in enumerate(finals):
            run = fake_run(tmp_path, f"{agent}-{seed}", [f"agent={agent}", f"seed={seed}"], [(1, 10.0), (2, final)])
            (run / "references.json").write_text(json.dumps(refs))
            runs.append(str(run))
    plot_main([*runs, "--out", str(tmp_path / "c.png")])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "eval/normalized_score, last evaluation:"
    assert out[1].split() == ["zero", "action", "6.00"] and out[2].split() == ["behaviour", "policy", "32.50"]
    def half(a, b):
        return f"{t_quantile_975(1) * np.std([a, b], ddof=1) / np.sqrt(2):.2f}"

    assert out[3].split()[:4] == ["agent=bc", "42.00", "±", half(40.0, 44.0)]
    assert out[4].split()[:4] == ["agent=qsarsa_ac2", "55.00", "±", half(50.0, 60.0)]
    assert (tmp_path / "c.png").stat().st_size > 10_000
    # runs on different datasets (different levels): no lines rather than wrong ones
    (Path(runs[0]) / "references.json").write_text(json.dumps({"zero action": {**refs["zero action"], "level": 1.0}}))
    plot_main([*runs, "--out", str(tmp_path / "d.png")])
    assert "zero action" not in capsys.readouterr().out
