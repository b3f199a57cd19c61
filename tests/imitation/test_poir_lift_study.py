"""The BC-vs-POIR study's shift axes and the pooling of seeds into the reported table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "imitation"))
import poir_lift  # noqa: E402


def test_each_axis_shifts_only_itself():
    def as_dict(axis, s):
        return dict(o.split("=") for o in poir_lift.shift_overrides(axis, s))

    obj, rob, noi, both = (as_dict(a, 0.1) for a in ("object", "robot", "noise", "all"))
    assert obj == {"env.shift.init": "0.1", "env.shift.action_noise": "0.0", "env.shift.robot_init_scale": "0.0",
                   "env.shift.object_init_scale": "1.0"}
    assert rob["env.shift.object_init_scale"] == "0.0" and rob["env.shift.robot_init_scale"] == "1.0"
    assert noi["env.shift.init"] == "0.0" and noi["env.shift.action_noise"] == "0.1"
    assert both["env.shift.init"] == both["env.shift.action_noise"] == "0.1"
    with pytest.raises(ValueError, match="unknown shift axis"):
        poir_lift.parse_cells("all:0.1,friction:0.2")
    assert poir_lift.parse_cells("all:0,noise:0.2") == [("all", 0.0), ("noise", 0.2)]


def test_report_pools_seeds_by_episodes(tmp_path, monkeypatch):
    monkeypatch.setattr(poir_lift, "plot", lambda results, path: None)
    for seed, (bc, poir) in enumerate(((0.25, 0.5), (0.5, 1.0))):
        (tmp_path / f"seed{seed}").mkdir()
        rows = [{"axis": "all", "shift": 0.1, "seed": seed, "episodes": 40, "bc": bc, "poir_offline": poir,
                 "poir_online": None}]
        (tmp_path / f"seed{seed}" / "rows.json").write_text(json.dumps(rows))
    (cell,) = poir_lift.report(tmp_path)["cells"]
    assert cell["bc"] == pytest.approx(0.375) and cell["poir_offline"] == pytest.approx(0.75)
    assert cell["bc_episodes"] == 80 and cell["seeds"] == [0, 1] and cell["poir_online"] is None
    assert cell["bc_se"] == pytest.approx((0.375 * 0.625 / 80) ** 0.5)


def test_report_keeps_the_seeds_in_seeds_json_and_regenerates_without_run_dirs(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(poir_lift, "plot", lambda results, path: None)
    for seed, bc in enumerate((0.25, 0.5)):
        (tmp_path / f"seed{seed}").mkdir()
        rows = [{"axis": "all", "shift": 0.1, "seed": seed, "episodes": 40, "bc": bc, "poir_offline": 0.5,
                 "poir_online": None}]
        (tmp_path / f"seed{seed}" / "rows.json").write_text(json.dumps(rows))
        (tmp_path / f"seed{seed}" / "latency.json").write_text(json.dumps([{"threads": 1, "act_ms_mean": 8.0}]))
    first = poir_lift.report(tmp_path)
    seeds = json.loads((tmp_path / "seeds.json").read_text())
    assert sorted(seeds) == ["0", "1"] and sorted(seeds["1"]) == ["latency", "rows"]
    for seed in (0, 1):  # run dirs are not kept: the report is regenerated from seeds.json alone
        shutil.rmtree(tmp_path / f"seed{seed}")
    assert poir_lift.report(tmp_path) == first and len(first["latency"]) == 2
    # a new run dir of one seed replaces that seed's entries and keeps the others
    (tmp_path / "seed1").mkdir()
    rows = [{"axis": "all", "shift": 0.1, "seed": 1, "episodes": 40, "bc": 0.75, "poir_offline": 0.5,
             "poir_online": None}]
    (tmp_path / "seed1" / "rows.json").write_text(json.dumps(rows))
    (cell,) = poir_lift.report(tmp_path)["cells"]
    assert cell["bc"] == pytest.approx(0.5) and cell["seeds"] == [0, 1]


def test_report_pools_each_earlier_fine_tuning_version_it_finds(tmp_path, monkeypatch):
    monkeypatch.setattr(poir_lift, "plot", lambda results, path: None)
    for seed, v2 in enumerate((0.5, None)):  # seed 1 was never fine-tuned with v2
        (tmp_path / f"seed{seed}").mkdir()
        row = {"axis": "all", "shift": 0.1, "seed": seed, "episodes": 40, "bc": 0.1, "poir_offline": 0.5,
               "poir_online": 0.75, "poir_online_v1": 0.25}
        if v2 is not None:
            row["poir_online_v2"] = v2
        (tmp_path / f"seed{seed}" / "rows.json").write_text(json.dumps([row]))
    (cell,) = poir_lift.report(tmp_path)["cells"]
    assert cell["poir_online"] == pytest.approx(0.75) and cell["poir_online_episodes"] == 80
    assert cell["poir_online_v1"] == pytest.approx(0.25) and cell["poir_online_v1_episodes"] == 80
    assert cell["poir_online_v2"] == pytest.approx(0.5) and cell["poir_online_v2_episodes"] == 40


def test_arm_summary_reads_the_deployed_arm_and_per_arm_counts():
    episodes = [
        {"online/episode_success": 1.0, "online/arm": 1.0, "online/best_arm": 1.0, "online/arm0_episodes": 0.0,
         "online/arm1_episodes": 1.0},
        {"online/episode_success": 0.0, "online/arm": 0.0, "online/best_arm": 1.0, "online/arm0_episodes": 1.0,
         "online/arm1_episodes": 1.0},
        {"online/episode_success": 1.0, "online/arm": 1.0, "online/best_arm": 1.0, "online/arm0_episodes": 1.0,
         "online/arm1_episodes": 2.0},
    ]
    assert poir_lift.arm_summary(episodes) == {"best_arm": 1, "arm_episodes": [1, 2], "arm_won": [0, 2]}
    assert poir_lift.arm_summary([{"online/episode_success": 1.0}]) == {}
