"""The package as a user installs it: build the wheel, install it (not editable) into a fresh virtual
environment, and use it from a directory with no source tree in sight.

The fresh venv gets only the wheel (`--no-deps`); the heavy dependencies (torch, gymnasium, ...) resolve
through a .pth line pointing at this environment's site-packages. Python does not process .pth files of
a directory added that way, so this environment's editable rlkit2 finder stays inactive: `import rlkit2`
can only find the wheel's copy, which the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: int = 600, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    # 1. the wheel, built from a copy of the sources (no build/ or egg-info litter in the repo)
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "multirun", "build",
                                                             "dist", "*.egg-info", "__pycache__", "site", "tests",
                                                             "experiments", ".mypy_cache", ".ruff_cache"))
    # shipped behaviour policies travel as package data (stand-in files: the wheel is only listed here)
    shipped = src / "rlkit2" / "data" / "policies" / "hopper"
    shipped.mkdir(parents=True, exist_ok=True)
    for name in ("medium.safetensors", "medium.json"):
        (shipped / name).write_bytes(b"{}")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)],
         tmp_path)
    (wheel,) = dist.glob("rlkit2-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rlkit2/py.typed" in names and "rlkit2/conf/config.yaml" in names and "rlkit2/envs/gym_mujoco.py" in names
    assert {"rlkit2/data/policies/README.md", "rlkit2/data/policies/hopper/medium.safetensors",
            "rlkit2/data/policies/hopper/medium.json"} <= names
    assert not any(n.startswith(("envs/", "conf/", "tests/", "examples/")) for n in names)

    # 2. a fresh venv holding only the wheel; dependencies through a .pth line
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], tmp_path)
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).strip())
    (site / "_rlkit2_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "work"  # cwd: no rlkit2/ here, nor on PYTHONPATH
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", OMP_NUM_THREADS="1", PATH=f"{venv / 'bin'}:{env['PATH']}")
    where = _run([str(py), "-c", "import rlkit2, rlkit2.envs, rlkit2.conf; print(rlkit2.__file__); "
                  "print(rlkit2.envs.__file__); print(rlkit2.conf.__file__)"], work, env=env).split()
    assert all(Path(w).resolve().is_relative_to(venv.resolve()) for w in where), where

    # 3. example (a) from a copy of examples/, then rlkit2.load_policy on what it saved
    shutil.copytree(ROOT / "examples", work / "examples")
    _run([str(py), "examples/train_qsarsa_loop.py", "--steps", "200", "--out", str(work / "run")], work, env=env)
    summary = json.loads((work / "run" / "summary.json").read_text())
    check = (
        "import sys, json, rlkit2; sys.path.insert(0, 'examples'); import point_mass; point_mass.register();"
        "p, info = rlkit2.load_policy('run', with_info=True);"
        "r = rlkit2.evaluate(rlkit2.make_env(info['env'], seed=0), p, num_episodes=10, seed=10_000);"
        "print(json.dumps({'return': r['eval/return'], 'file': rlkit2.__file__}))"
    )
    out = json.loads(_run([str(py), "-c", check], work, env=env).strip().splitlines()[-1])
    assert out["return"] == pytest.approx(summary["return"], abs=1e-6)
    assert Path(out["file"]).resolve().is_relative_to(venv.resolve())

    # 4. the CLI's configs come from the installed package (pkg://rlkit2.conf)
    cfg = _run([str(venv / "bin" / "rlkit2-train"), "--cfg", "job", "agent=qsarsa", "env=hopper"], work, env=env)
    assert "name: qsarsa" in cfg and "Hopper" in cfg
