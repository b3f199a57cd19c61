"""The layering of docs/architecture.md, checked on the source: no import runs from a lower layer to a higher one
(function-level imports included: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNERS = ("rlkit2.run", "rlkit2.train", "rlkit2.api", "rlkit2.sweep")
# (modules under these paths, may not import these)
RULES = [
    ("rlkit2/core.py", ("rlkit2",)),
    ("rlkit2/lm", ("rlkit2.agents", *RUNNERS)),
    ("rlkit2/agents", RUNNERS),
    ("rlkit2/data", RUNNERS),
    ("rlkit2/rewards", ("rlkit2.agents", *RUNNERS)),
    ("rlkit2/replay.py", ("rlkit2.agents", *RUNNERS)),
    ("rlkit2/networks.py", ("rlkit2.agents", *RUNNERS)),
    ("rlkit2/learners.py", ("rlkit2.agents", *RUNNERS)),
    ("rlkit2/merging.py", ("rlkit2.agents", *RUNNERS)),
    ("envs", RUNNERS),
]


def imported(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


@pytest.mark.parametrize("where, forbidden", RULES, ids=[r[0] for r in RULES])
def test_no_import_runs_up_the_layers(where, forbidden):
    base = ROOT / where
    files = [base] if base.is_file() else sorted(base.rglob("*.py"))
    assert files, where
    bad = [f"{f.relative_to(ROOT)} imports {m}" for f in files for m in sorted(imported(f)) if _under(m, forbidden)]
    assert not bad, "\n".join(bad)
