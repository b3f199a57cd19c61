"""Interval estimates for RL results over few runs: the estimators of Agarwal et al. (2021), numpy only.

- `bootstrap_ci(values)`: the mean (or any statistic) of one setting's runs with a 95 % percentile-bootstrap CI.
- `iqm(x)`: the interquartile mean, the mean of the middle 50 % of the scores (scipy's
  `trim_mean(x, 0.25)`: `int(0.25 n)` scores cut from each end, the same as `rliable.metrics.aggregate_iqm`).
- `difference_ci(x, y)`: mean(X) - mean(Y) of two settings' independent runs, with a 95 % percentile-bootstrap
  CI (each setting's runs resampled on their own).
- `nested_bootstrap_ci(per_seed)`: the mean over training seeds of per-episode outcomes (success rates), episodes
  nested in seeds: each replicate resamples the seeds, then each drawn seed's episodes.
- `stratified_bootstrap_ci(per_task)`: an aggregate over tasks (IQM by default) with a 95 % CI from the
  stratified bootstrap: each replicate resamples the runs *within* each task, with replacement, and pools them.
- `performance_profile(per_task, taus)`: the fraction of runs (all tasks pooled) scoring above each threshold,
  with stratified-bootstrap bands.
- `probability_of_improvement(x, y)`: P(X > Y), averaged over tasks, of a run of algorithm X beating one of Y on
  the same task (Mann-Whitney, ties count 1/2), with a stratified-bootstrap CI.

`per_task` is a mapping task -> 1-D array of run scores (tasks may hold different numbers of runs; pooled
statistics then weigh each task by its runs, as rliable's runs x tasks matrix does when counts are equal),
or a 2-D array (runs, tasks). Every function takes a `seed`: the same seed gives the same interval.

rliable itself (1.2.0) is not used: it pins `arch<8`, whose 7.x releases fail to import beside pandas 3
(`deprecate_kwarg` signature), and arch 8 breaks rliable's `StratifiedBootstrap` (random_state=None is
refused). The estimators here follow rliable's definitions and are tested against known answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

PerTask = Mapping[str, Sequence[float] | np.ndarray] | np.ndarray | Sequence[Sequence[float]]
Statistic = Callable[[np.ndarray], np.ndarray]

DEFAULT_REPS = 10_000
DEFAULT_CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval [lo, hi]."""

    point: float
    lo: float
    hi: float
    n: int = 0  # runs it was computed from (all tasks together for aggregates)

    def as_dict(self) -> dict[str, float]:
        return {"point": self.point, "lo": self.lo, "hi": self.hi, "n": self.n}

    def format(self, digits: int = 1) -> str:
        """`12.3 [10.1, 14.0]`."""
        return f"{self.point:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


# --------------------------------------------------------------------------- point statistics (last axis)


def iqm(x: Any, axis: int | None = None) -> Any:
    """Interquartile mean: the mean after cutting `int(0.25 n)` of the sorted scores from each end.

    `axis=None` pools everything (a float); otherwise along `axis` (an array with that axis removed).
    """
    a = np.asarray(x, dtype=np.float64)
    if axis is None:
        a, axis = a.reshape(-1), 0
    a = np.sort(np.moveaxis(a, axis, -1), axis=-1)
    n = a.shape[-1]
    if n == 0:
        raise ValueError("iqm of an empty array")
    k = int(0.25 * n)
    out = a[..., k:n - k].mean(axis=-1)
    return float(out) if out.ndim == 0 else out


def _mean_last(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).mean(axis=-1)


def _iqm_last(x: np.ndarray) -> np.ndarray:
    return np.asarray(iqm(x, axis=-1))


STATISTICS: dict[str, Statistic] = {"mean": _mean_last, "iqm": _iqm_last, "median": lambda x: np.median(x, axis=-1)}


def _statistic(stat: str | Statistic) -> Statistic:
    if callable(stat):
        return stat
    try:
        return STATISTICS[stat]
    except KeyError:
        raise ValueError(f"unknown statistic '{stat}'; valid: {', '.join(STATISTICS)} or a callable") from None


def _percentiles(boot: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(boot, [alpha, 100.0 - alpha], axis=0)
    return lo, hi


# --------------------------------------------------------------------------- one setting's runs


def bootstrap_ci(values: Sequence[float] | np.ndarray, stat: str | Statistic = "mean", *, reps: int = DEFAULT_REPS,
                 confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """`stat` of the runs' scores with a percentile-bootstrap CI (runs resampled with replacement).

    One run gives a degenerate interval [x, x]; no runs is an error.
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("bootstrap_ci of no runs")
    fn = _statistic(stat)
    point = float(fn(x[None, :])[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(int(reps), x.size))
    lo, hi = _percentiles(fn(x[idx]), confidence)
    return Interval(point, float(lo), float(hi), int(x.size))


def difference_ci(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, reps: int = DEFAULT_REPS,
                  confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """mean(x) - mean(y) for two settings' independent runs, with a percentile-bootstrap CI that resamples each
    setting's runs on its own (n = both counts together). With a few runs a side the interval is too narrow:
    read it as a screen, not a test."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError("difference_ci needs runs on both sides")
    rng = np.random.default_rng(seed)
    boot = (a[rng.integers(0, a.size, size=(int(reps), a.size))].mean(axis=1)
            - b[rng.integers(0, b.size, size=(int(reps), b.size))].mean(axis=1))
    lo, hi = _percentiles(boot, confidence)
    return Interval(float(a.mean() - b.mean()), float(lo), float(hi), int(a.size + b.size))


def nested_bootstrap_ci(per_seed: Sequence[Sequence[float] | np.ndarray], *, reps: int = DEFAULT_REPS,
                        confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """The mean over training seeds of each seed's mean episode outcome, with a two-level bootstrap CI: each
    replicate resamples the seeds, then the episodes within every drawn seed (episodes nested in seeds), so the
    interval carries both the seed-to-seed and the episode-to-episode variation. `n` counts the seeds.
    """
    seeds = [np.asarray(x, dtype=np.float64).reshape(-1) for x in per_seed]
    if not seeds or any(x.size == 0 for x in seeds):
        raise ValueError("nested_bootstrap_ci needs at least one seed, each with at least one episode")
    point = float(np.mean([x.mean() for x in seeds]))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(seeds), size=(int(reps), len(seeds)))
    means = np.empty(picks.shape)
    for k, x in enumerate(seeds):  # every draw of seed k resamples its episodes afresh
        where = picks == k
        means[where] = x[rng.integers(0, x.size, size=(int(where.sum()), x.size))].mean(axis=1)
    lo, hi = _percentiles(means.mean(axis=1), confidence)
    return Interval(point, float(lo), float(hi), len(seeds))


# --------------------------------------------------------------------------- several tasks' runs


def as_tasks(per_task: PerTask) -> list[np.ndarray]:
    """The runs of each task as 1-D float arrays (a 2-D input is (runs, tasks))."""
    if isinstance(per_task, Mapping):
        tasks = [np.asarray(v, dtype=np.float64).reshape(-1) for _, v in sorted(per_task.items())]
    else:
        arr = np.asarray(per_task, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"scores of shape {arr.shape}: expected (runs, tasks) or a mapping task -> runs")
        tasks = [arr[:, j] for j in range(arr.shape[1])]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one run")
    return tasks


def stratified_resamples(per_task: PerTask, reps: int = DEFAULT_REPS, seed: int = 0) -> np.ndarray:
    """(reps, total runs): each row resamples every task's runs within that task, tasks concatenated in order."""
    return _resample(as_tasks(per_task), reps, seed)


def _resample(tasks: list[np.ndarray], reps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([t[rng.integers(0, t.size, size=(int(reps), t.size))] for t in tasks], axis=1)


def stratified_bootstrap_ci(per_task: PerTask, stat: str | Statistic = "iqm", *, reps: int = DEFAULT_REPS,
                            confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """An aggregate over tasks (`stat` of all runs pooled: IQM by default) with a stratified-bootstrap CI."""
    tasks = as_tasks(per_task)
    fn = _statistic(stat)
    pooled = np.concatenate(tasks)
    point = float(fn(pooled[None, :])[0])
    lo, hi = _percentiles(fn(_resample(tasks, reps, seed)), confidence)
    return Interval(point, float(lo), float(hi), int(pooled.size))


@dataclasses.dataclass(frozen=True)
class Profile:
    """A performance profile: fraction of runs with score > tau, and its bootstrap band, at each tau."""

    taus: np.ndarray
    fraction: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def performance_profile(per_task: PerTask, taus: Sequence[float] | np.ndarray, *, reps: int = 2_000,
                        confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Profile:
    """Run-score distribution: the fraction of all runs (tasks pooled) scoring above each tau, with
    stratified-bootstrap bands."""
    tasks = as_tasks(per_task)
    t = np.asarray(taus, dtype=np.float64).reshape(-1)
    pooled = np.concatenate(tasks)
    frac = (pooled[:, None] > t[None, :]).mean(axis=0)
    boot = _resample(tasks, reps, seed)  # (reps, N)
    fr = np.stack([(boot > tau).mean(axis=1) for tau in t], axis=1)  # (reps, T)
    lo, hi = _percentiles(fr, confidence)
    return Profile(t, frac, lo, hi)


def _p_greater(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y)/2 along the last axis of x (…, n) and y (…, m)."""
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return np.asarray(gt + 0.5 * eq)


def probability_of_improvement(x: Mapping[str, Sequence[float] | np.ndarray],
                               y: Mapping[str, Sequence[float] | np.ndarray], *, reps: int = 2_000,
                               confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """P(X > Y): for each task the probability that a run of X scores above a run of Y (ties 1/2), averaged
    over the tasks both have; CI by resampling X's and Y's runs within each task."""
    tasks = sorted(set(x) & set(y))
    if not tasks:
        raise ValueError("probability_of_improvement: the two algorithms share no task")
    rng = np.random.default_rng(seed)
    point, boot = [], []
    for task in tasks:
        a = np.asarray(x[task], dtype=np.float64).reshape(-1)
        b = np.asarray(y[task], dtype=np.float64).reshape(-1)
        if a.size == 0 or b.size == 0:
            raise ValueError(f"task '{task}' has no runs for one of the algorithms")
        point.append(float(_p_greater(a, b)))
        ra = a[rng.integers(0, a.size, size=(int(reps), a.size))]
        rb = b[rng.integers(0, b.size, size=(int(reps), b.size))]
        boot.append(_p_greater(ra, rb))
    lo, hi = _percentiles(np.mean(boot, axis=0), confidence)
    n = sum(len(x[t]) + len(y[t]) for t in tasks)
    return Interval(float(np.mean(point)), float(lo), float(hi), int(n))
