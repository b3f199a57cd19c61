"""Collect runs of `entailment_task.py` into the committed results and redo the tables from them.

    python -m experiments.rlhf.collect                                   # tables from results/runs.json
    python -m experiments.rlhf.collect seed3=outputs/rlhf_seed3 ...      # add / replace runs first

`results/runs.json` holds one entry per run (the run dir's `results.json`: arguments, NLI accuracy, the
policies' rows, the RL curve), keyed by a name (`lr1e-4`, `lr2e-4`, `h128`, `seed0`...); the run dirs themselves
(checkpoints, SFT / NLI models) are not kept. Written from it: `results/runs.md` (one table per run) and
`results/seeds/summary.{json,md}` (mean, sample std and per-seed values over the runs named `seed<k>`).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
COLS = (("reward", "NLI reward"), ("true_consistency", "true consistency"), ("statement_precision", "stmt precision"),
        ("kl", "KL to SFT"), ("summary_words", "words"), ("statements", "statements"))
POLICIES = ("sft", "rl", "sft_greedy", "rl_greedy")


def add_run(runs: dict[str, Any], name: str, run_dir: Path) -> None:
    """One run dir's `results.json` (and its NLI test-set size when the run trained the NLI) as `runs[name]`."""
    entry = json.loads((run_dir / "results.json").read_text())
    acc = run_dir / "nli" / "accuracy.json"
    if acc.exists():
        entry["nli_test_pairs"] = json.loads(acc.read_text())["n_test"]
    runs[name] = entry


def run_table(rows: dict[str, dict[str, float]], fmt: str = "{:.3f}") -> str:
    lines = ["| policy | " + " | ".join(c[1] for c in COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(fmt.format(r[k]) for k, _ in COLS) + " |" for name, r in rows.items()]
    return "\n".join(lines)


def seed_summary(runs: dict[str, Any]) -> dict[str, Any]:
    """Mean, sample standard deviation and per-seed values of each table column over the `seed<k>` runs."""
    seeds = sorted((k for k in runs if re.fullmatch(r"seed\d+", k)), key=lambda k: int(k[4:]))
    out: dict[str, Any] = {}
    for policy in POLICIES:
        out[policy] = {}
        for key, _ in COLS:
            vals = [runs[s]["rows"][policy][key] for s in seeds]
            out[policy][key] = {"mean": float(np.mean(vals)), "std": statistics.stdev(vals), "per_seed": vals}
    out["rl_minus_sft_true_consistency"] = [runs[s]["rows"]["rl"]["true_consistency"]
                                            - runs[s]["rows"]["sft"]["true_consistency"] for s in seeds]
    return out


def summary_table(summary: dict[str, Any]) -> str:
    lines = ["| policy | " + " | ".join(c[1] for c in COLS) + " |", "|---" * (len(COLS) + 1) + "|"]
    for policy in POLICIES:
        cells = (f"{summary[policy][k]['mean']:.3f} ± {summary[policy][k]['std']:.3f}" for k, _ in COLS)
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    gain = [round(x, 3) for x in summary["rl_minus_sft_true_consistency"]]
    return "\n".join(lines) + f"\n\nRL - SFT true consistency per seed: {gain}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", metavar="NAME=RUN_DIR", help="entailment_task.py output dirs to add first")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    path = args.results / "runs.json"
    runs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for item in args.runs:
        name, _, run_dir = item.partition("=")
        add_run(runs, name, Path(run_dir))
    if args.runs:
        path.write_text(json.dumps(runs, indent=1))
    parts = [f"## {name}\n\n{run_table(r['rows'])}\n\nNLI held-out accuracy: {r['nli_accuracy']}\n"
             for name, r in runs.items()]
    (args.results / "runs.md").write_text("\n".join(parts))
    summary = seed_summary(runs)
    if summary["rl_minus_sft_true_consistency"]:
        (args.results / "seeds").mkdir(exist_ok=True)
        (args.results / "seeds" / "summary.json").write_text(json.dumps(summary, indent=1))
        (args.results / "seeds" / "summary.md").write_text(summary_table(summary))
    print((args.results / "runs.md").read_text())


if __name__ == "__main__":
    main()
