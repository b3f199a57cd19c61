"""Learning curves from `metrics.jsonl` files to PNG.

One figure, two panels: the score (`eval/normalized_score`, `eval/success_rate` or `eval/return`, or `key`)
against step, and beside it the training losses (`train/*loss*` keys). Every evaluation is a marker, so a run
with one evaluation shows its point. Runs that differ only by seed are one setting: its mean across seeds,
with a band of the 95% confidence interval of that mean (Student's t-interval: mean ± t(0.975, n-1) · s/√n,
s the sample standard deviation of the n seeds) wherever two or more seeds logged the step. Reference levels
(`references={"behaviour policy": 6.5, "zero-action": 1.2}`) are dashed horizontal lines, and the score axis
always includes them. The score axis never zooms into noise: it spans at least 10% of the largest |value|
(a success rate spans [0, 1]; a normalised score's axis includes 0, the random policy's level). Legends sit
below the panels, one short label a setting (the overrides that differ between settings, wrapped).
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlkit2.logging import read_metrics

DEFAULT_KEYS = ("eval/normalized_score", "eval/return", "eval/success_rate")
CI_METHOD = "95% CI of the mean over seeds (Student's t-interval)"
MIN_RELATIVE_SPAN = 0.1  # the score axis spans at least this fraction of the largest |value| on it
LABEL_WIDTH = 34  # legend labels are wrapped at this many characters ...
LABEL_LINES = 3  # ... and cut after this many lines
MAX_LOSS_KEYS = 4  # the first four train/*loss* keys, alphabetically

# Student's t quantile t(0.975, df) for df = 1..30; above 30 a Cornish-Fisher expansion around z = 1.96.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """Student's t 0.975 quantile with `df` degrees of freedom (the 95% two-sided interval's multiplier)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, half-width of its 95% t-interval); the half-width is NaN for fewer than two values."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan
    if len(v) < 2:
        return float(v.mean()), math.nan
    return float(v.mean()), float(t_quantile_975(len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def _series(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `key`; a step logged twice (a resumed run) keeps its last value."""
    by_step: dict[float, float] = {}
    for r in rows:
        v = r.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and "step" in r:
            by_step[float(r["step"])] = float(v)
    steps = np.asarray(sorted(by_step), dtype=float)
    return steps, np.asarray([by_step[s] for s in steps], dtype=float)


def numeric_keys(rows: list[dict[str, Any]]) -> set[str]:
    """The keys a metrics file logged numbers under (`step` left out)."""
    return {k for r in rows for k, v in r.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)}


def pick_key(rows: list[dict[str, Any]], keys: Sequence[str] = DEFAULT_KEYS) -> str | None:
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


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Override keys by their last dotted part (`agent.alpha` -> `alpha`) where that is unambiguous."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def setting_labels(run_dirs: Sequence[str | os.PathLike[str]]) -> dict[Path, str]:
    """A label per run made of the overrides that vary across `run_dirs`, seeds left out, so runs that
    differ only by seed share a label (and a mean ± CI band). Keys are shortened to their last dotted part
    where unambiguous (`agent.alpha=2.5` -> `alpha=2.5`); "all" when nothing but the seed varies."""
    paths = [Path(d) for d in run_dirs]
    overrides = {p: _overrides(p) for p in paths}
    keys = sorted({k for o in overrides.values() for k in o if k != "seed"})
    varying = [k for k in keys if len({o.get(k) for o in overrides.values()}) > 1]
    short = _short_keys(varying)
    labels = {}
    for p in paths:
        if overrides[p]:
            labels[p] = ", ".join(f"{short[k]}={overrides[p].get(k, '-')}" for k in varying) or "all"
        else:
            labels[p] = re.sub(r"seed=\d+,?", "", p.name).strip(",") or "all"
    return labels


def wrap_label(label: str, width: int = LABEL_WIDTH, lines: int = LABEL_LINES) -> str:
    """`label` wrapped at `width` characters, at most `lines` lines (the rest cut, marked with '…')."""
    wrapped = textwrap.wrap(label, width=width, break_long_words=True, break_on_hyphens=False) or [label]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "\n".join(wrapped)


def _legend_label(label: str, n: int, single_group: bool) -> str:
    seeds = f"{n}\u00a0seeds" if n > 1 else "1\u00a0run"  # no-break spaces: "(3 seeds)" stays on one line
    if single_group:
        return f"mean of {seeds}" if n > 1 else seeds
    return wrap_label(f"{label} ({seeds})")


def aggregate(series: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Seeds' (steps, values) -> per step: mean, 95% t-interval half-width (NaN below 2 seeds), n."""
    steps = np.unique(np.concatenate([s for s, _ in series])) if series else np.zeros(0)
    lookup = [dict(zip(s.tolist(), v.tolist(), strict=True)) for s, v in series]
    mean, half, count = [], [], []
    for st in steps.tolist():
        vals = [d[st] for d in lookup if st in d]
        m, h = mean_ci95(vals)
        mean.append(m)
        half.append(h)
        count.append(len(vals))
    return {"steps": steps, "mean": np.asarray(mean), "half": np.asarray(half), "n": np.asarray(count)}


def score_limits(values: Sequence[float] | np.ndarray, key: str = "",
                 references: Mapping[str, float] | None = None) -> tuple[float, float]:
    """Y-limits of the score panel: the values and the reference levels, spanning at least
    `MIN_RELATIVE_SPAN` of the largest |value| (so noise is not zoomed into a climb), plus 5% margins.
    A success rate spans [0, 1]; a normalised score's range includes 0 (the random policy's level)."""
    v = np.asarray([*np.asarray(values, dtype=float).ravel(), *(references or {}).values()], dtype=float)
    v = v[np.isfinite(v)]
    if key.endswith("success_rate"):
        v = np.concatenate([v, [0.0, 1.0]])
    elif key.endswith("normalized_score"):  # 0 is a level of its own: the random policy's return
        v = np.concatenate([v, [0.0]])
    if len(v) == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    min_span = max(MIN_RELATIVE_SPAN * max(abs(lo), abs(hi)), 1e-6)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _loss_keys(rows_lists: Sequence[list[dict[str, Any]]]) -> list[str]:
    keys = sorted({k for rows in rows_lists for k in numeric_keys(rows) if k.startswith("train/") and "loss" in k})
    return keys[:MAX_LOSS_KEYS]


def curves_figure(run_dirs: Sequence[str | os.PathLike[str]], key: str | None = None, title: str | None = None,
                  references: Mapping[str, float] | None = None, losses: bool = True) -> Any:
    """The matplotlib Figure `plot_runs` saves (score panel, then the losses panel when any run logged a
    `train/*loss*` key). Raises ValueError when `key` (or, without one, every default key) is absent,
    listing the keys the runs did log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for d, label in setting_labels(run_dirs).items():
        groups[label].append(read_metrics(d))
    all_rows = [rows for runs in groups.values() for rows in runs]
    present = sorted(set().union(*(numeric_keys(rows) for rows in all_rows))) if all_rows else []
    if key is None:
        key = next((k for rows in all_rows if (k := pick_key(rows))), None)
        if key is None:
            raise ValueError(f"no plottable metric ({', '.join(DEFAULT_KEYS)}) in {list(map(str, run_dirs))}; "
                             f"keys present: {', '.join(present) or 'none'} (choose one with --key)")
    elif key not in present:
        raise ValueError(f"no run logged '{key}'; keys present: {', '.join(present) or 'none'}")
    loss_keys = _loss_keys(all_rows) if losses else []
    fig = plt.figure(figsize=(11.5 if loss_keys else 6.5, max(4.2, 1.5 * len(loss_keys))))
    grid = fig.add_gridspec(max(len(loss_keys), 1), 2 if loss_keys else 1, width_ratios=[1.4, 1] if loss_keys else None)
    ax = fig.add_subplot(grid[:, 0])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    single = len(groups) == 1
    on_axis: list[float] = []
    banded = False
    for i, (label, runs) in enumerate(sorted(groups.items())):
        series = [s for s in (_series(rows, key) for rows in runs) if len(s[0])]
        if not series:
            continue
        agg = aggregate(series)
        colour = colours[i % len(colours)]
        ax.plot(agg["steps"], agg["mean"], marker="o", markersize=4, linewidth=1.5, color=colour,
                label=_legend_label(label, len(series), single))
        if len(agg["steps"]) == 1:  # one evaluation: its point, with its value written beside it
            ax.annotate(f"{agg['mean'][0]:.4g}", (agg["steps"][0], agg["mean"][0]), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, color=colour)
        ok = np.isfinite(agg["half"])
        if ok.any():
            banded = True
            lo, hi = agg["mean"] - agg["half"], agg["mean"] + agg["half"]
            ax.fill_between(agg["steps"], lo, hi, where=ok, alpha=0.2, color=colour, linewidth=0)
            on_axis += [*lo[ok], *hi[ok]]
        on_axis += list(agg["mean"])
    ref_styles = ("--", ":", "-.")
    for j, (name, level) in enumerate((references or {}).items()):
        ax.axhline(float(level), linestyle=ref_styles[j % len(ref_styles)], color="0.35", linewidth=1.2,
                   label=wrap_label(f"{name} ({float(level):.4g})"))
    ax.set_ylim(*score_limits(on_axis, key, references))
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    if banded:
        ax.set_title(f"band: {CI_METHOD}", fontsize=8, color="0.3")
    _legend_below(ax)
    if loss_keys:
        _losses_panels(fig, [grid[j, 1] for j in range(len(loss_keys))], groups, loss_keys, colours)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _losses_panels(fig: Any, cells: Sequence[Any], groups: Mapping[str, list[list[dict[str, Any]]]],
                   loss_keys: Sequence[str], colours: Sequence[str]) -> list[Any]:
    """One small panel a loss key (its own linear scale), stacked beside the score panel; a setting's
    colour is the score panel's. Markers on the logged steps."""
    axes: list[Any] = []
    for j, (cell, k) in enumerate(zip(cells, loss_keys, strict=True)):
        ax = fig.add_subplot(cell, sharex=axes[0] if axes else None)
        for i, (_, runs) in enumerate(sorted(groups.items())):
            series = [s for s in (_series(rows, k) for rows in runs) if len(s[0])]
            if series:
                agg = aggregate(series)
                ax.plot(agg["steps"], agg["mean"], marker=".", markersize=3, linewidth=1.2,
                        color=colours[i % len(colours)])
        several = any(len(runs) > 1 for runs in groups.values())
        ax.set_title(f"{k} (mean over seeds)" if several else k, fontsize=8, color="0.3", loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if j < len(loss_keys) - 1:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("step")
        axes.append(ax)
    return axes


def _legend_below(ax: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(2, len(handles)),
                  fontsize=7, frameon=False)


def plot_runs(run_dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], key: str | None = None,
              title: str | None = None, references: Mapping[str, float] | None = None,
              losses: bool = True) -> Path:
    """Draw `key` (default: the first of eval/normalized_score, eval/return, eval/success_rate present)
    against step for each group of runs (mean over seeds, 95% t-interval band), the `references` levels as
    horizontal lines and, beside it, the training losses; write the PNG atomically to `out`."""
    import matplotlib.pyplot as plt

    fig = curves_figure(run_dirs, key=key, title=title, references=references, losses=losses)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")  # "tight": the legends below the axes are kept
    finally:
        plt.close(fig)
    os.replace(tmp, out)
    return out


def saved_reference_levels(run_dirs: Sequence[str | os.PathLike[str]], key: str) -> dict[str, float]:
    """The reference levels offline runs wrote (`references.json`: zero action, behaviour policy) for `key`,
    when every run that has them agrees (runs on different datasets have different levels: none then)."""
    found = []
    for d in run_dirs:
        f = Path(d) / "references.json"
        if f.is_file():
            refs = json.loads(f.read_text())
            found.append({name: float(r["level"]) for name, r in refs.items() if r.get("key") == key})
    if not found or any(f != found[0] for f in found[1:]):
        return {}
    return found[0]


def final_scores_table(run_dirs: Sequence[str | os.PathLike[str]], key: str,
                       references: Mapping[str, float] | None = None) -> str:
    """Each setting's final `key` (the last evaluation of each run; mean ± 95% t-interval over its seeds)
    beside the reference levels, as aligned text lines."""
    rows: list[tuple[str, str]] = [(name, f"{level:.2f}") for name, level in (references or {}).items()]
    groups: dict[str, list[float]] = defaultdict(list)
    for d, label in setting_labels(run_dirs).items():
        _, values = _series(read_metrics(d), key)
        if len(values):
            groups[label].append(float(values[-1]))
    for label, finals in sorted(groups.items()):
        m, h = mean_ci95(finals)
        spread = f" ± {h:.2f} (95% CI, {len(finals)} seeds)" if len(finals) > 1 else " (1 run)"
        rows.append((label, f"{m:.2f}{spread}"))
    width = max((len(n) for n, _ in rows), default=0)
    return "\n".join([f"{key}, last evaluation:"] + [f"  {name:<{width}}  {value}" for name, value in rows])


def _parse_reference(text: str) -> tuple[str, float]:
    import argparse

    name, sep, value = text.rpartition("=")
    try:
        level = float(value)
    except ValueError:
        level = math.nan
    if not sep or not name or not math.isfinite(level):
        raise argparse.ArgumentTypeError(f"--ref expects NAME=VALUE (e.g. 'behaviour policy=6.5'), got {text!r}")
    return name, level


def main(argv: list[str] | None = None) -> None:
    """`rlkit2-plot RUN_DIR... [--key K] [--out curves.png] [--ref NAME=VALUE]`: learning curves of runs to PNG."""
    import argparse

    p = argparse.ArgumentParser(prog="rlkit2-plot", description="Plot learning curves from run directories "
                                f"(mean over seeds; band: {CI_METHOD}; losses beside).")
    p.add_argument("runs", nargs="+", help="run directories (each holding metrics.jsonl)")
    p.add_argument("--key", default=None, help="the score to plot (default: eval/normalized_score, return, ...)")
    p.add_argument("--out", default="learning_curves.png")
    p.add_argument("--title", default=None)
    p.add_argument("--ref", action="append", default=[], type=_parse_reference, metavar="NAME=VALUE",
                   help="a reference level drawn as a horizontal line, e.g. --ref 'behaviour policy=6.5' (repeatable; "
                        "default: the levels offline runs wrote to references.json)")
    p.add_argument("--no-losses", action="store_true", help="leave out the losses panel")
    args = p.parse_args(argv)
    missing = [r for r in args.runs if not (Path(r) / "metrics.jsonl").is_file() and not Path(r).is_file()]
    if missing:
        p.error(f"no metrics.jsonl in {', '.join(missing)}")
    try:
        fig_key = args.key or next((k for r in args.runs if (k := pick_key(read_metrics(r)))), None)
        refs = dict(args.ref) or (saved_reference_levels(args.runs, fig_key) if fig_key else {})
        out = plot_runs(args.runs, args.out, key=args.key, title=args.title, references=refs or None,
                        losses=not args.no_losses)
    except ValueError as e:
        p.error(str(e))
    if fig_key:
        print(final_scores_table(args.runs, fig_key, refs))
    print(out)
