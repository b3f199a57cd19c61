"""Tables and plots of the offline-RL evidence grid, regenerated from its results JSON (nothing is re-run).

    python -m experiments.offline.report                       # results/grid.json -> results/grid.md + PNGs
    python -m experiments.offline.report --readme              # also splice the tables into README.md
    python -m experiments.offline.report --results other.json --out-dir /tmp/report
    python -m experiments.offline.report --with results/ablation_frozen.json   # an ablation beside the grid

Per dataset: each agent's mean score over seeds with a 95 % percentile-bootstrap CI, the zero-action and
behaviour-policy reference rows, and the peers' published D4RL numbers (`published.py`: CORL's final scores on
D4RL v2, not comparable 1:1 with the generated v5 data), then each Q-sarsa agent against TD3+BC and every agent
against BC (difference of means with a bootstrap CI). Across datasets: the IQM with 95 % stratified-bootstrap
CIs, the probability of improving on TD3+BC / IQL, and performance profiles (PNG). Then the wall time, the
machines and the library versions the runs were measured with. Statistics: `rlkit2.stats`.

`--readme [PATH]` replaces what lies between `<!-- STEM:start -->` and `<!-- STEM:end -->` in PATH (default
experiments/offline/README.md), STEM being the report's name (`grid`, `collection_check+ablation_frozen`, ...),
so each results file (and each combination with `--with`) has its own section; a marked section is appended
when its markers are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `experiments` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from experiments.offline import published
from experiments.offline.grid_plan import AGENTS, DATASETS, RESULTS
from experiments.offline.report_cost import collection, cost_and_provenance
from experiments.offline.report_readme import readme_body, splice
from rlkit2 import stats
from rlkit2.checkpoint import atomic_write_bytes

README = Path(__file__).resolve().parent / "README.md"
BASELINES = ("td3_bc", "iql")


def _order(items: Sequence[str], reference: Sequence[str]) -> list[str]:
    pos = {x: i for i, x in enumerate(reference)}
    return sorted(set(items), key=lambda x: (pos.get(x, len(reference)), x))


def scores_by(data: dict[str, Any]) -> dict[str, dict[str, dict[int, float]]]:
    """agent -> dataset -> seed -> score."""
    out: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in data["runs"]:
        out[r["agent"]][r["dataset"]][int(r["seed"])] = float(r["score"])
    return out


def equalized(per_dataset: dict[str, dict[int, float]], datasets: Sequence[str]) -> dict[str, np.ndarray] | None:
    """Each dataset's runs restricted to the seeds every dataset has (so each weighs the same in pooled
    statistics); None when a dataset has no run."""
    if any(not per_dataset.get(d) for d in datasets):
        return None
    common = set.intersection(*(set(per_dataset[d]) for d in datasets))
    if not common:
        return None
    return {d: np.array([per_dataset[d][s] for s in sorted(common)]) for d in datasets}


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _ci(iv: stats.Interval, largest_group: int) -> str:
    """The interval, or none where every resampled group holds one seed (resampling one value gives it back)."""
    return "— (1 seed)" if largest_group < 2 else f"[{iv.lo:.1f}, {iv.hi:.1f}]"


def dataset_tables(data: dict[str, Any], agents: list[str], datasets: list[str], reps: int, seed: int) -> list[str]:
    by = scores_by(data)
    refs = {(r["dataset"], r["kind"]): r for r in data.get("references", [])}
    lines = ["## Per dataset", "",
             "Mean normalised score over seeds with its 95 % percentile-bootstrap CI "
             f"({reps:,} resamples); n = seeds. Reference rows: the zero-action policy (evaluated like the runs, "
             "n seeds) and the behaviour policy (its return from the dataset's metadata). Published rows: "
             f"{published.SOURCE}; mean ± std as published.", ""]
    for d in datasets:
        lines += [f"### {d}", "", "| policy | score | 95 % CI | n | source |", "|---|---:|---|---:|---|"]
        for a in agents:
            runs = by.get(a, {}).get(d)
            if runs:
                iv = stats.bootstrap_ci(list(runs.values()), reps=reps, seed=seed)
                lines.append(f"| {a} | {iv.point:.1f} | {_ci(iv, len(runs))} | {iv.n} | this grid |")
        z = refs.get((d, "zero_action"))
        if z and all(s is not None for s in z["scores"]):
            iv = stats.bootstrap_ci(z["scores"], reps=reps, seed=seed)
            ci = _ci(iv, len(z["scores"]))
            lines.append(f"| zero action | {iv.point:.1f} | {ci} | {iv.n} | this grid: {z['note']} |")
        b = refs.get((d, "behaviour"))
        if b:
            lines.append(f"| behaviour policy (greedy) | {b['score']:.1f} | — | — | {b['note']} |")
        e = refs.get((d, "dataset"))
        if e and e.get("score") is not None:
            lines.append(f"| dataset episodes | {e['score']:.1f} | — | — | {e['note']} |")
        for peer, m, s, label in published.published_rows(d):
            lines.append(f"| {peer} (published) | {m:.1f} ± {s:.1f} | — | — | {label} |")
        lines.append("")
    return lines


def comparison_pairs(agents: list[str]) -> list[tuple[str, str]]:
    """The comparisons the grid is for: each Q-sarsa agent against TD3+BC (the method it builds on), every
    agent against BC (what a score has to beat to show it used the rewards), each variant (`--with`)
    against the agent it varies, and Qsarsa-AC against Qsarsa-AC2 (kappa = 0: the actor term ablated)."""
    pairs = [(a, a.split(" (")[0]) for a in agents if " (" in a and a.split(" (")[0] in agents]
    pairs += [("qsarsa_ac", "qsarsa_ac2")] if {"qsarsa_ac", "qsarsa_ac2"} <= set(agents) else []
    pairs += [(a, "td3_bc") for a in agents if a.startswith("qsarsa") and "td3_bc" in agents]
    pairs += [(a, "offline_bc") for a in agents if a != "offline_bc" and "offline_bc" in agents]
    return pairs


def comparison_table(data: dict[str, Any], agents: list[str], datasets: list[str], reps: int,
                     seed: int) -> list[str]:
    by = scores_by(data)
    trained_on: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in data["runs"]:
        trained_on[(r["agent"], r["dataset"])].add(collection(r))
    rows = []
    for a, b in comparison_pairs(agents):
        for d in datasets:
            x, y = by.get(a, {}).get(d), by.get(b, {}).get(d)
            if not x or not y:
                continue
            iv = stats.difference_ci(list(x.values()), list(y.values()), reps=reps, seed=seed)
            verdict = ("too few seeds" if min(len(x), len(y)) < 2 else "higher" if iv.lo > 0
                       else "lower" if iv.hi < 0 else "no clear difference")
            if len(trained_on[(a, d)] | trained_on[(b, d)]) > 1:  # see "Cost and provenance": Data
                verdict += " (runs trained on different collections of the dataset)"
            ci = _ci(iv, max(len(x), len(y)))
            rows.append(f"| {a} − {b} | {d} | {iv.point:+.1f} {ci} | {len(x)} vs {len(y)} | {verdict} |")
    if not rows:
        return []
    return ["## Comparisons", "",
            "Difference of the mean normalised scores (A − B) with a 95 % percentile-bootstrap CI, each agent's "
            f"seeds resampled on their own ({reps:,} resamples); \"higher\" or \"lower\" where the CI excludes 0 "
            "(with 2 seeds a side at least: one seed gives no interval). "
            "With 2-3 seeds a side these intervals are too narrow and they are not adjusted for the number of "
            "comparisons: a screen, not a test.", "",
            "| A − B | dataset | difference [95 % CI] | seeds | A vs B |", "|---|---|---|---|---|", *rows, ""]


def overview_table(data: dict[str, Any], agents: list[str], datasets: list[str]) -> list[str]:
    by = scores_by(data)
    refs = {(r["dataset"], r["kind"]): r for r in data.get("references", [])}
    counts = Counter(len(by[a][d]) for a in agents for d in datasets if by.get(a, {}).get(d))
    usual = counts.most_common(1)[0][0] if counts else 0  # the seeds most cells have; the others say theirs
    head = ["dataset", *agents, "zero action", "behaviour (greedy)", "dataset episodes"]
    seeds = f"{usual} seeds a cell" + (", other counts in parentheses" if len(counts) > 1 else "")
    lines = ["## Overview", "", f"Mean normalised score over seeds ({seeds}; details and CIs below).", "",
             "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for d in datasets:
        cells = [d]
        for a in agents:
            runs = by.get(a, {}).get(d)
            n = f" ({len(runs)})" if runs and len(runs) != usual else ""
            cells.append(f"{np.mean(list(runs.values())):.1f}{n}" if runs else "—")
        z, b, e = refs.get((d, "zero_action")), refs.get((d, "behaviour")), refs.get((d, "dataset"))
        cells.append(_fmt(float(np.mean(z["scores"]))) if z and all(s is not None for s in z["scores"]) else "—")
        cells.append(_fmt(b["score"]) if b else "—")
        cells.append(_fmt(e["score"]) if e and e.get("score") is not None else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", *behaviour_column_note(refs, datasets)]


def behaviour_column_note(refs: dict[tuple[str, str], Any], datasets: list[str]) -> list[str]:
    """What the overview's behaviour column is for each kind of data shown, from the rows' own notes
    (`rlkit2.data.references.behaviour_return` words them): medium-replay's is the medium snapshot's return."""
    said: dict[str, str] = {}
    for d in datasets:
        b = refs.get((d, "behaviour"))
        if b:
            said.setdefault(dataset_kind(d) or d, b["note"].removeprefix("metadata: "))
    if not said:
        return []
    return ["behaviour (greedy), from each file's metadata: " + "; ".join(f"{k}: {n}" for k, n in said.items())
            + ".", ""]


def dataset_kind(name: str) -> str | None:
    """`hopper-v5-medium-replay` / `hopper-medium-replay-v2` -> "medium-replay"; None for a path or other name."""
    from rlkit2.core import ConfigError
    from rlkit2.data.names import parse_dataset_name

    try:
        return parse_dataset_name(name).kind
    except ConfigError:
        return None


def dataset_sets(datasets: list[str]) -> list[tuple[str, str, list[str]]]:
    """The sets aggregates are taken over, as (key, name, datasets): every dataset; each kind of data
    (medium, medium-replay, ...) when there are several, so a kind that not every agent has run yet does not
    hide the others' aggregate; and the hopper ones when they differ from all."""
    out = [("", f"all datasets ({len(datasets)})", datasets)]
    kinds: dict[str, list[str]] = defaultdict(list)
    for d in datasets:
        if (k := dataset_kind(d)) is not None:
            kinds[k].append(d)
    if len(kinds) > 1:
        out += [(f"_{k}", f"{k} ({len(ds)})", ds) for k, ds in kinds.items()]
    hopper = [d for d in datasets if d.startswith("hopper")]
    if hopper and hopper != datasets:
        out.append(("_hopper", f"hopper ({len(hopper)})", hopper))
    return out


def aggregate_tables(data: dict[str, Any], agents: list[str], datasets: list[str], reps: int,
                     seed: int) -> list[str]:
    by = scores_by(data)
    sets = dataset_sets(datasets)
    lines = ["## Across datasets", "",
             "IQM (interquartile mean) of all runs pooled over the datasets, with its 95 % stratified-bootstrap CI "
             f"(runs resampled within each dataset, {reps:,} resamples). Only the seeds every dataset of the set "
             "has enter (extra seeds of one dataset would weigh it more); n = runs. An agent without runs on "
             "every dataset of a set gets no entry there (cql runs on hopper only).", "",
             "| agent | " + " | ".join(f"IQM, {name} | 95 % CI | n" for _, name, _ in sets) + " |",
             "|---|" + "---:|---|---:|" * len(sets)]
    for a in agents:
        cells = [a]
        for _, _, ds in sets:
            eq = equalized(by.get(a, {}), ds)
            if eq is None:
                cells += ["—", "", ""]
                continue
            iv = stats.stratified_bootstrap_ci(eq, "iqm", reps=reps, seed=seed)
            cells += [f"{iv.point:.1f}", _ci(iv, max(len(v) for v in eq.values())), str(iv.n)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    baselines = [b for b in BASELINES if b in by]
    if baselines:
        lines += ["Probability of improvement P(agent > baseline): for each dataset both ran, the chance that a "
                  "run of the agent scores above a run of the baseline (ties ½), averaged over those datasets; "
                  "95 % CI from resampling each one's runs within each dataset.", "",
                  "| agent | " + " | ".join(f"P(> {b}) | 95 % CI" for b in baselines) + " |",
                  "|---|" + "---:|---|" * len(baselines)]
        for a in agents:
            cells = [a]
            for b in baselines:
                if a == b or not set(by.get(a, {})) & set(by[b]):
                    cells += ["—", ""]
                    continue
                x = {d: list(v.values()) for d, v in by[a].items()}
                y = {d: list(v.values()) for d, v in by[b].items()}
                iv = stats.probability_of_improvement(x, y, reps=min(reps, 2000), seed=seed)
                cells += [f"{iv.point:.2f}", f"[{iv.lo:.2f}, {iv.hi:.2f}]"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def profile_plot(data: dict[str, Any], agents: list[str], datasets: list[str], path: Path, title: str,
                 seed: int) -> bool:
    """Performance profiles (fraction of runs above tau, with stratified-bootstrap bands) of the agents that ran
    on every dataset of `datasets`; False when none did."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = scores_by(data)
    per_agent = {a: eq for a in agents if (eq := equalized(by.get(a, {}), datasets)) is not None}
    if not per_agent:
        return False
    allv = np.concatenate([np.concatenate(list(eq.values())) for eq in per_agent.values()])
    lo, hi = min(0.0, float(allv.min())), float(allv.max())
    taus = np.linspace(lo, hi + 0.05 * (hi - lo + 1e-9), 101)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for a, eq in per_agent.items():
        p = stats.performance_profile(eq, taus, seed=seed)
        (line,) = ax.plot(taus, p.fraction, label=a, lw=1.8)
        ax.fill_between(taus, p.lo, p.hi, color=line.get_color(), alpha=0.15, lw=0)
    refs = {(r["dataset"], r["kind"]): r for r in data.get("references", [])}
    zero = [float(np.mean(refs[(d, "zero_action")]["scores"])) for d in datasets
            if (d, "zero_action") in refs and all(s is not None for s in refs[(d, "zero_action")]["scores"])]
    if zero:
        ax.axvline(float(np.mean(zero)), color="grey", ls=":", lw=1, label="zero action (mean)")
    ax.set_xlabel("normalised score τ (D4RL reference returns)")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def render(data: dict[str, Any], out_dir: Path, sources: Sequence[str], reps: int = 10_000,
           seed: int = 0) -> tuple[str, list[Path]]:
    """The report's markdown (image links relative to out_dir) and the PNGs it wrote (`<stem>_profile*.png`);
    `sources`: the results file's name, then those of the `--with` files."""
    stem = "+".join(Path(x).stem for x in sources)
    agents = _order([r["agent"] for r in data["runs"]], AGENTS)
    datasets = _order([r["dataset"] for r in data["runs"]] + [r["dataset"] for r in data.get("references", [])],
                      DATASETS)
    g = data.get("grid", {})
    lines = ["# Offline-RL evidence grid", "",
             f"Generated by `python -m experiments.offline.report` from "
             f"{' with '.join(f'`{Path(x).name}`' for x in sources)}; do not edit by hand.", "",
             f"Budget: {g.get('updates', 0):,} updates per run, {g.get('eval_episodes')} evaluation episodes every "
             f"{g.get('eval_every', 0):,} updates; a run's score is the mean of its last {g.get('last_evals')} "
             f"evaluations of `{g.get('score_key')}` (D4RL's reference returns, `rlkit2.data.scores`)."
             + (f" Extra overrides: `{' '.join(g['overrides'])}`." if g.get("overrides") else ""), ""]
    lines += overview_table(data, agents, datasets)
    lines += dataset_tables(data, agents, datasets, reps, seed)
    lines += comparison_table(data, agents, datasets, reps, seed)
    lines += aggregate_tables(data, agents, datasets, reps, seed)
    pngs = []
    for key, name, ds in dataset_sets(datasets):
        png = out_dir / f"{stem}_profile{key}.png"
        if profile_plot(data, agents, ds, png, f"Performance profiles, {name} (95 % stratified-bootstrap bands)",
                        seed):
            pngs.append(png)
            lines += [f"![performance profiles, {name}]({png.name})", ""]
    lines += cost_and_provenance(data, agents)
    return "\n".join(lines).rstrip() + "\n", pngs


def with_variants(data: dict[str, Any], variants: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """`data` with the runs of other results files (an ablation's: other overrides or budget) added under the
    label `agent (what differs)`, so they share its tables, reference rows and comparisons."""
    g, runs = data.get("grid", {}), list(data["runs"])
    for name, v in variants:
        vg = v.get("grid", {})
        if not v.get("runs"):
            raise SystemExit(f"{name}: no runs recorded yet")
        if vg.get("score_key") != g.get("score_key") or vg.get("last_evals") != g.get("last_evals"):
            raise SystemExit(f"{name}: scored otherwise than the main results (score_key, last_evals)")
        # an override without its config group: agent.eta=1.0 -> eta=1.0
        extra = [k.split(".")[-1] + "=" + x for k, _, x in
                 (o.partition("=") for o in vg.get("overrides", []) if o not in g.get("overrides", []))]
        if vg.get("updates") != g.get("updates"):
            extra.append(f"{vg.get('updates', 0):,} updates")
        label = ", ".join(extra) or Path(name).stem
        runs += [{**r, "agent": f"{r['agent']} ({label})"} for r in v["runs"]]
    return {**data, "runs": runs, "sessions": [*data.get("sessions", []),
                                                *(s for _, v in variants for s in v.get("sessions", []))]}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.offline.report", description=__doc__.split("\n")[0])
    p.add_argument("--results", default=str(RESULTS), help="results JSON (default: %(default)s)")
    p.add_argument("--out-dir", default=None, help="where <results stem>.md and the PNGs go (default: beside the JSON)")
    p.add_argument("--readme", nargs="?", const=str(README), default=None,
                   help="splice the tables into this markdown file's section for this report (between "
                        f"<!-- STEM:start --> and <!-- STEM:end -->; default: {README})")
    p.add_argument("--with", dest="variants", action="append", default=[], metavar="JSON",
                   help="another results file (an ablation) whose runs join the tables as `agent (what differs)`; "
                        "writes <results stem>+<its stem>.md (repeatable)")
    p.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a = p.parse_args(argv)
    results = Path(a.results)
    data = json.loads(results.read_text())
    if not data.get("runs"):
        raise SystemExit(f"{results}: no runs recorded yet")
    data = with_variants(data, [(v, json.loads(Path(v).read_text())) for v in a.variants])
    out_dir = Path(a.out_dir) if a.out_dir else results.parent
    sources = [results.name, *(Path(v).name for v in a.variants)]
    md, pngs = render(data, out_dir, sources, a.reps, a.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "+".join(Path(x).stem for x in sources)
    md_path = out_dir / f"{stem}.md"
    atomic_write_bytes(md_path, md.encode())
    print(md)
    print(f"wrote {md_path}" + "".join(f", {x}" for x in pngs))
    if a.readme:
        splice(Path(a.readme), readme_body(md, out_dir, Path(a.readme)), stem)
        print(f"spliced the tables into {a.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
