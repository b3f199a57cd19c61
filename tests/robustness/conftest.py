"""Fixtures shared by the robustness tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def hopper_file(tmp_path_factory) -> Path:
    """A 600-row random-policy Hopper-v5 dataset in D4RL format (episodes cut at 100 steps)."""
    from tests.offline.test_offline_cli import tiny_hopper_file

    return tiny_hopper_file(tmp_path_factory.mktemp("data") / "tiny_hopper.hdf5")
