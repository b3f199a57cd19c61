"""The imitation pieces import without importing robosuite (it is an optional extra)."""

from __future__ import annotations

import subprocess
import sys


def test_imitation_modules_do_not_import_robosuite():
    code = ("import sys, rlkit2.envs.robosuite, rlkit2.agents.bc, rlkit2.agents.poir, rlkit2.run.imitation, "
            "rlkit2.data.robomimic, rlkit2.data.collect_demos; print('robosuite' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
