"""Learning curves from `metrics.jsonl` files to PNG (mean ± std band over seeds)."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rlkit2.logging import read_metrics

DEFAULT_KEYS = ("eval/normalized_score", "eval/return", "eval/success_rate")


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if key in r and isinstance(r[key], int | float)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*pts, strict=True)
    return np.asarray(s, dtype=float), np.asarray(v, dtype=float)


def pick_key(rows: list[dict], keys: Sequence[str] = DEFAULT_KEYS) -> str | None:
    for k in keys:
        if any(k in r for r in rows):
            return k
    return None


def _overrides(run_dir: Path) -> dict[str, str]:
    f = run_dir / ".hydra" / "overrides.yaml"
    if not f.exists():
        return {}
    items = [ln.strip()[2:] for ln in f.read_text().splitlines() if ln.strip().startswith("- ")]
    return dict(item.split("=", 1) for item in items if "=" in item)


def setting_labels(run_dirs: Sequence[str | os.PathLike[str]]) -> dict[Path, str]:
    """A label per run made of the overrides that vary across `run_dirs`, seeds left out, so runs that
    differ only by seed share a label (and a mean ± std band)."""
    paths = [Path(d) for d in run_dirs]
    overrides = {p: _overrides(p) for p in paths}
    keys = sorted({k for o in overrides.values() for k in o if k != "seed"})
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    labels = {}
    for p in paths:
        if overrides[p]:
            labels[p] = ",".join(f"{k}={overrides[p].get(k, '-')}" for k in varying) or "all"
        else:
            labels[p] = re.sub(r"seed=\d+,?", "", p.name).strip(",") or "all"
    return labels


def plot_runs(run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], key: str | None = None,
              title: str | None = None) -> Path:
    """Draw `key` (default: the first of eval/normalized_score, eval/return, eval/success_rate present)
    against step for each group of runs; runs that differ only by seed share a mean ± std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[list[dict]]] = defaultdict(list)
    for d, label in setting_labels(run_dirs).items():
        groups[label].append(read_metrics(d))
    if key is None:
        key = next((k for rows_list in groups.values() for rows in rows_list if (k := pick_key(rows))), None)
    if key is None:
        raise ValueError(f"no plottable metric ({', '.join(DEFAULT_KEYS)}) in {list(map(str, run_dirs))}")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, runs in sorted(groups.items()):
        series = [_series(rows, key) for rows in runs]
        series = [s for s in series if len(s[0])]
        if not series:
            continue
        n = min(len(s[0]) for s in series)
        steps = series[0][0][:n]
        vals = np.stack([s[1][:n] for s in series])
        mean, std = vals.mean(0), vals.std(0)
        ax.plot(steps, mean, label=f"{label} (n={len(series)})")
        if len(series) > 1:
            ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> None:
    """`rlkit2-plot RUN_DIR... [--key K] [--out curves.png]`: learning curves of runs to PNG."""
    import argparse

    p = argparse.ArgumentParser(prog="rlkit2-plot", description="Plot learning curves from run directories.")
    p.add_argument("runs", nargs="+", help="run directories (each holding metrics.jsonl)")
    p.add_argument("--key", default=None)
    p.add_argument("--out", default="learning_curves.png")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    print(plot_runs(args.runs, args.out, key=args.key, title=args.title))
