"""Fixtures shared by the robustness tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hopper_file(tmp_path_factory) -> Path:
    """A 600-row random-policy Hopper-v5 dataset in D4RL format (episodes cut at 100 steps)."""
    from tests.offline.test_offline_cli import tiny_hopper_file

    return tiny_hopper_file(tmp_path_factory.mktemp("data") / "tiny_hopper.hdf5")


@pytest.fixture(scope="session")
def lift_demos(tmp_path_factory) -> Path:
    """Four robomimic-format demos with Lift's low-dim layout (random numbers: resume tests need the format,
    not a good demonstrator; the scripted expert is tested in tests/imitation)."""
    import numpy as np

    from rlkit2.data.robomimic import Demo
    from rlkit2.data.robomimic_writer import write_robomimic

    widths = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}
    rng = np.random.default_rng(0)
    demos = []
    for i in range(4):
        t = 25 + i
        obs = {k: rng.normal(size=(t + 1, w)) for k, w in widths.items()}
        dones = np.zeros(t)
        dones[-1] = 1.0
        demos.append(Demo({k: v[:-1] for k, v in obs.items()}, rng.uniform(-1, 1, (t, 7)), dones, dones,
                          {k: v[1:] for k, v in obs.items()}))
    return write_robomimic(tmp_path_factory.mktemp("demos") / "lift.hdf5", demos, {"env_name": "Lift"})
