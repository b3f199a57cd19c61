"""Tables and a plot of the fair imitation study from its committed JSON (`results/study/<task>.json`).

    python -m experiments.imitation.study report     # prints the tables; writes <task>.png and the README block

Success rates: mean over training seeds of each seed's held-out success rate, 95 % nested bootstrap CI (seeds,
then episodes within each). Comparisons: per-episode paired differences (the two policies of a seed meet the
same held-out episodes), same bootstrap (intervals not adjusted for multiplicity); "wins" / "loses" only when
the interval excludes 0 and the planned number of seeds is in (a percentile bootstrap over 2-3 seeds runs
narrow).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.imitation.study_plan import POLICIES, TASKS
from rlkit2.stats import Interval, nested_bootstrap_ci

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- study:begin -->", "<!-- study:end -->"
PLANNED_SEEDS = 5
COMPARISONS = [("poir_features", "bc_features"), ("poir", "bc"), ("poir_features_online", "bc_features_online"),
               ("bc_features", "bc"), ("bc_rnn_gmm", "bc"), ("poir_features_online", "poir_features"),
               ("bc_features_online", "bc_features"), ("bc_rnn_gmm_4x", "bc_rnn_gmm"),
               # robomimic's baseline given the budget it needs (where it ran) against BC and POIR
               ("bc_rnn_gmm_4x", "bc"), ("bc_features", "bc_rnn_gmm_4x"), ("poir_features", "bc_rnn_gmm_4x"),
               ("poir", "bc_rnn_gmm_4x")]


def _cell(r: dict[str, Any]) -> str:
    return f"{r['axis']}:{r['shift']:g}"


def _by(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, list[int]]]:
    out: dict[tuple[str, str], dict[int, list[int]]] = defaultdict(dict)
    for r in rows:
        out[(r["policy"], _cell(r))][int(r["seed"])] = list(r["success"])
    return out


def success_table(rows: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, Interval]]]:
    cells = sorted({_cell(r) for r in rows}, key=lambda c: (c != "all:0", c.split(":")[0], float(c.split(":")[1])))
    table: dict[str, dict[str, Interval]] = {}
    for (policy, cell), per_seed in _by(rows).items():
        table.setdefault(policy, {})[cell] = nested_bootstrap_ci([per_seed[s] for s in sorted(per_seed)], reps=4000)
    return cells, table


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A - B per cell on the seeds both have: paired per episode, nested bootstrap."""
    by, out = _by(rows), []
    for a, b in COMPARISONS:
        for cell in sorted({c for (p, c) in by if p == a}):
            seeds = sorted(set(by.get((a, cell), {})) & set(by.get((b, cell), {})))
            if not seeds:
                continue
            diffs = [np.subtract(by[(a, cell)][s], by[(b, cell)][s]) for s in seeds]
            ci = nested_bootstrap_ci(diffs, reps=4000)
            # with few seeds a percentile bootstrap has few distinct seed resamples and runs narrow: no verdict
            if len(seeds) < PLANNED_SEEDS:
                verdict = f"(no verdict: {len(seeds)} of {PLANNED_SEEDS} seeds)"
            else:
                verdict = "wins" if ci.lo > 0 else "loses" if ci.hi < 0 else "no clear difference"
            out.append({"a": a, "b": b, "cell": cell, "diff": ci.as_dict(), "verdict": verdict})
    return out


def markdown(data: dict[str, Any]) -> str:
    rows = data["rows"]
    cells, table = success_table(rows)
    seeds = sorted({int(r["seed"]) for r in rows})
    eps = sorted({len(r["success"]) for r in rows})
    b = data["budget"]
    lines = [f"**Preliminary: {len(seeds)} of the planned {PLANNED_SEEDS} training seeds** (the study resumes; "
             "this block is regenerated as seeds finish).", ""] if len(seeds) < PLANNED_SEEDS else []
    lines += [f"**{data['task']}**, held-out episodes: {len(seeds)} training seeds ({', '.join(map(str, seeds))}), "
             f"{'/'.join(map(str, eps))} episodes per seed and cell; {b['demos']} scripted demos per seed (own set), "
             f"{b['offline_updates']} offline updates, online policies {b['online_steps']} env steps in the cell "
             f"with {b['online_updates_per_episode']} updates per episode. Success rate, mean over seeds "
             "[95 % nested-bootstrap CI, not adjusted for the number of comparisons]; shift cells `axis:s` as defined "
             "above.", "",
             "| policy | " + " | ".join(cells) + " | ms/step |", "|---" * (len(cells) + 2) + "|"]
    ms = defaultdict(list)
    for r in rows:
        ms[r["policy"]].append(r["ms_per_step"])
    for policy in [p for p in POLICIES if p in table]:
        vals = [table[policy][c].format(2) + (f" ({table[policy][c].n} seeds)" if table[policy][c].n != len(seeds)
                                               else "") if c in table[policy] else "—" for c in cells]
        lines.append(f"| {POLICIES[policy].label} | " + " | ".join(vals) + f" | {np.mean(ms[policy]):.1f} |")
    lines += ["", "ms/step: wall time per env step of the held-out episodes (simulation + policy, one thread, "
              "machine shared with other jobs).", "", "| comparison (A − B) | cell | difference [95 % CI] | A vs B |",
              "|---|---|---|---|"]
    for c in comparisons(rows):
        d = Interval(**{k: c["diff"][k] for k in ("point", "lo", "hi", "n")})
        lines.append(f"| {POLICIES[c['a']].label} − {POLICIES[c['b']].label} | {c['cell']} | {d.format(2)} | "
                     f"{c['verdict']} |")
    v, m = data.get("versions", {}), data.get("machine", {})
    python = m.get("python", v.get("python", "?"))  # older files kept it among the versions
    lines += ["", f"Machine: {m.get('cores', '?')} cores ({m.get('cpu', '?')}, python {python}); "
              f"wall time of all rows: {sum(r['seconds'] for r in rows) / 3600:.1f} core-hours; "
              + ", ".join(f"{k} {x}" for k, x in v.items()) + "."]
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells, table = success_table(data["rows"])
    policies = [p for p in POLICIES if p in table]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cells)), 4))
    width = 0.8 / len(policies)
    for i, p in enumerate(policies):
        x = np.arange(len(cells)) + (i - (len(policies) - 1) / 2) * width
        have = [c in table[p] for c in cells]
        iv = [table[p][c] if c in table[p] else Interval(0, 0, 0) for c in cells]
        ax.bar(x[have], [v.point for v, h in zip(iv, have, strict=True) if h], width,
               yerr=np.array([[v.point - v.lo, v.hi - v.point] for v, h in zip(iv, have, strict=True) if h]).T,
               capsize=2, label=POLICIES[p].label)
    ax.set_xticks(np.arange(len(cells)), cells)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out success (95 % CI)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(f"{data['task']}: BC vs POIR with the same inputs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(out: Path, readme: Path = README) -> None:
    blocks = []
    for task in TASKS:  # Lift first, as the README introduces them
        path = out / f"{task}.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        if not data.get("rows"):
            continue
        md = markdown(data)  # the tables live in the README block (no second copy beside the JSON)
        fit = out / f"{task}_fit.json"  # `study fit`: how closely each BC-family policy fits its demos
        if fit.is_file():
            from experiments.imitation.study_fit import table as fit_table

            md += "\n" + fit_table(json.loads(fit.read_text())) + "\n"
        plot(data, path.with_suffix(".png"))
        print(md)
        blocks.append(md + f"\n![{data['task']}](results/study/{path.with_suffix('.png').name})\n")
    if blocks and readme.is_file() and out.resolve() == (readme.parent / "results" / "study").resolve():
        text = readme.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            readme.write_text(head + BEGIN + "\n" + "\n".join(blocks) + END + rest.split(END, 1)[1])
