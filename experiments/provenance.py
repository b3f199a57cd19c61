"""Where and with what a result was measured: one reader of the machine and the library versions for every
experiment and benchmark that writes results JSON (a table is only as good as the machine line under it)."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@functools.cache
def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC ...", "Intel(R) Xeon(R) ..."), not just its architecture: kernels, and
    so results, differ between CPUs of one architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """Host, CPU model, logical CPUs, platform and Python version."""
    return {"host": platform.node(), "cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


DISTRIBUTIONS = {"hydra": "hydra-core"}  # import names whose distribution is named otherwise


def _version(name: str) -> str:
    try:
        return metadata.version(DISTRIBUTIONS.get(name, name))
    except metadata.PackageNotFoundError:
        return "absent"


def git_revision() -> str:
    """The checkout's short commit ("" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(*packages: str) -> dict[str, str]:
    """rlkit2, torch and NumPy's versions, each of `packages` ("absent" when not installed), and the git commit."""
    import numpy
    import torch

    import rlkit2

    out = {"rlkit2": rlkit2.__version__, "torch": torch.__version__, "numpy": numpy.__version__}
    out.update({p: _version(p) for p in packages})
    rev = git_revision()
    if rev:
        out["git"] = rev
    return out
