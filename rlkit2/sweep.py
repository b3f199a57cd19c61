"""Summarise a Hydra multirun directory: mean ± std over seeds per setting, as a table and a plot.

    rlkit2-sweep multirun/2026-11-25/12-00-00 [--key eval/normalized_score] [--out summary]

A setting is a job's overrides without `seed=...`; its score is the last logged value of `--key`
in each seed's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2.logging import read_metrics
from rlkit2.plotting import pick_key, plot_runs, setting_labels


def find_runs(sweep_dir: str | os.PathLike[str]) -> list[Path]:
    return sorted(p.parent for p in Path(sweep_dir).rglob("metrics.jsonl"))


def summarize(sweep_dir: str | os.PathLike[str], key: str | None = None) -> dict[str, Any]:
    runs = find_runs(sweep_dir)
    if not runs:
        raise FileNotFoundError(f"no metrics.jsonl under {sweep_dir}: is it a multirun directory?")
    per_setting: dict[str, list[float]] = defaultdict(list)
    labels = setting_labels(runs)
    for run in runs:
        rows = read_metrics(run)
        k = key or pick_key(rows)
        vals = [r[k] for r in rows if k and isinstance(r.get(k), int | float)]
        if vals:
            per_setting[labels[run]].append(float(vals[-1]))
            key = k
    table = {s: {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v), "values": v}
             for s, v in sorted(per_setting.items())}
    return {"key": key, "settings": table, "runs": [str(r) for r in runs]}


def to_markdown(summary: dict[str, Any]) -> str:
    lines = [f"| setting | {summary['key']} (mean ± std) | seeds |", "|---|---|---|"]
    for s, row in summary["settings"].items():
        lines.append(f"| {s} | {row['mean']:.2f} ± {row['std']:.2f} | {row['n']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="rlkit2-sweep", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--key", default=None, help="metric to summarise (default: eval/normalized_score, return, ...)")
    p.add_argument("--out", default=None, help="file stem for summary.{md,json,png} (default: inside sweep_dir)")
    args = p.parse_args(argv)
    summary = summarize(args.sweep_dir, args.key)
    out = Path(args.out) if args.out else Path(args.sweep_dir) / "summary"
    md = to_markdown(summary)
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    plot_runs(find_runs(args.sweep_dir), out.with_suffix(".png"), key=summary["key"])
    print(f"wrote {out}.md, {out}.json, {out}.png")


if __name__ == "__main__":
    main()
