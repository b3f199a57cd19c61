"""Summarise a Hydra multirun directory: mean, 95% CI and std over seeds per setting, as a table and a plot.

    rlkit2-sweep multirun/2026-11-25/12-00-00 [--key eval/normalized_score] [--out summary]

A setting is a job's overrides without `seed=...`; its score is the last logged value of `--key`
in each seed's metrics.jsonl. The interval is the 95% Student's t-interval of the mean over seeds
(mean ± t(0.975, n-1) · s/√n). A `--key` no run logged is an error listing the keys present, and nothing
is written: an existing summary is never replaced by an empty one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2.logging import read_metrics
from rlkit2.plotting import CI_METHOD, mean_ci95, numeric_keys, pick_key, plot_runs, setting_labels


class SweepError(ValueError):
    """A sweep directory or key that cannot be summarised (the message says why)."""


def find_runs(sweep_dir: str | os.PathLike[str]) -> list[Path]:
    return sorted(p.parent for p in Path(sweep_dir).rglob("metrics.jsonl"))


def summarize(sweep_dir: str | os.PathLike[str], key: str | None = None) -> dict[str, Any]:
    """The per-setting summary of `key` (default: the first of eval/normalized_score, return, ... logged).
    Raises FileNotFoundError without runs, SweepError when no run logged `key` (listing the keys present)."""
    runs = find_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"no metrics.jsonl under {sweep_dir}: is it a multirun directory?")
    rows_of = {run: read_metrics(run) for run in runs}
    present = sorted(set().union(*(numeric_keys(rows) for rows in rows_of.values())))
    if key is not None and key not in present:
        raise SweepError(f"no run under {sweep_dir} logged '{key}'; keys present: {', '.join(present) or 'none'}")
    if key is None:
        key = next((k for rows in rows_of.values() if (k := pick_key(rows))), None)
        if key is None:
            raise SweepError(f"no run under {sweep_dir} logged a default score key (eval/normalized_score, "
                             f"eval/return, eval/success_rate); keys present: {', '.join(present) or 'none'}")
    per_setting: dict[str, list[float]] = defaultdict(list)
    labels = setting_labels(runs)
    for run in runs:
        vals = [r[key] for r in rows_of[run] if isinstance(r.get(key), int | float)]
        if vals:
            per_setting[labels[run]].append(float(vals[-1]))
    table = {}
    for s, v in sorted(per_setting.items()):
        mean, half = mean_ci95(v)
        table[s] = {"mean": mean, "std": float(np.std(v)), "ci95": None if math.isnan(half) else half,
                    "n": len(v), "values": v}
    return {"key": key, "ci": CI_METHOD, "settings": table, "runs": [str(r) for r in runs]}


def to_markdown(summary: dict[str, Any]) -> str:
    lines = [f"| setting | {summary['key']} mean ± 95% CI | std | seeds |", "|---|---|---|---|"]
    for s, row in summary["settings"].items():
        ci = "n/a (1 seed)" if row.get("ci95") is None else f"{row['ci95']:.2f}"
        lines.append(f"| {s} | {row['mean']:.2f} ± {ci} | {row['std']:.2f} | {row['n']} |")
    lines.append("")
    lines.append(f"CI: {summary.get('ci', CI_METHOD)}; std: population standard deviation over seeds.")
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rlkit2-sweep", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--key", default=None, help="metric to summarise (default: eval/normalized_score, return, ...)")
    p.add_argument("--out", default=None, help="file stem for summary.{md,json,png} (default: inside sweep_dir)")
    args = p.parse_args(argv)
    try:
        summary = summarize(args.sweep_dir, args.key)
    except (FileNotFoundError, SweepError) as e:
        print(f"rlkit2-sweep: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    out = Path(args.out) if args.out else Path(args.sweep_dir) / "summary"
    md = to_markdown(summary)
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The plot first (it can fail on odd data): the table and JSON are replaced only once everything is made.
    plot_runs(find_runs(args.sweep_dir), out.with_suffix(".png"), key=summary["key"])
    _write_atomic(out.with_suffix(".md"), md + "\n")
    _write_atomic(out.with_suffix(".json"), json.dumps(summary, indent=2))
    print(f"wrote {out}.md, {out}.json, {out}.png")


if __name__ == "__main__":
    main()
