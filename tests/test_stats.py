"""rlkit2.stats: the interval estimators against known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from rlkit2 import stats


def test_iqm_known_values_and_scipy_trim_mean():
    assert stats.iqm(np.arange(8.0)) == pytest.approx(3.5)  # mean of 2, 3, 4, 5
    assert stats.iqm([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5)  # one cut from each end
    assert stats.iqm([5.0]) == 5.0
    assert stats.iqm([[1.0, 100.0], [2.0, 3.0]]) == pytest.approx(2.5)  # axis=None pools
    rng = np.random.default_rng(0)
    for n in (3, 4, 5, 7, 10, 33):
        x = rng.normal(size=n)
        assert stats.iqm(x) == pytest.approx(sps.trim_mean(x, 0.25))
    m = rng.normal(size=(6, 9))
    np.testing.assert_allclose(stats.iqm(m, axis=1), sps.trim_mean(m, 0.25, axis=1))
    with pytest.raises(ValueError):
        stats.iqm([])


def test_bootstrap_ci_contains_the_mean_and_is_reproducible():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    a = stats.bootstrap_ci(x, seed=3)
    assert a.point == pytest.approx(4.0) and a.lo < 4.0 < a.hi and a.n == 5
    assert a == stats.bootstrap_ci(x, seed=3)
    assert a != stats.bootstrap_ci(x, seed=4)
    assert stats.bootstrap_ci([7.0]) == stats.Interval(7.0, 7.0, 7.0, 1)  # one run: degenerate
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]).lo == 2.0
    assert stats.bootstrap_ci(x, "iqm").point == pytest.approx(3.0)
    with pytest.raises(ValueError):
        stats.bootstrap_ci([])
    with pytest.raises(ValueError):
        stats.bootstrap_ci(x, "mode")


def test_bootstrap_ci_coverage_on_normal_samples():
    """A 95 % percentile bootstrap of the mean of 30 normal draws covers the true mean ~93-95 % of the time."""
    rng = np.random.default_rng(0)
    trials, hits = 300, 0
    for i in range(trials):
        x = rng.normal(5.0, 2.0, size=30)
        ci = stats.bootstrap_ci(x, reps=1000, seed=i)
        hits += ci.lo <= 5.0 <= ci.hi
    assert 0.88 <= hits / trials <= 0.99
    # and the width is about 2 * 1.96 * sigma / sqrt(n)
    ci = stats.bootstrap_ci(rng.normal(0.0, 1.0, size=400), reps=4000)
    assert ci.hi - ci.lo == pytest.approx(2 * 1.96 / 20, rel=0.15)


def test_stratified_bootstrap_resamples_within_tasks():
    per_task = {"a": [0.0, 0.0, 0.0], "b": [10.0, 10.0, 10.0, 10.0, 10.0]}
    boot = stats.stratified_resamples(per_task, reps=50, seed=0)
    assert boot.shape == (50, 8)
    assert (boot[:, :3] == 0).all() and (boot[:, 3:] == 10).all()  # never mixes tasks
    ci = stats.stratified_bootstrap_ci(per_task, "mean")
    assert ci.point == ci.lo == ci.hi == pytest.approx(50.0 / 8)  # constant within tasks: no spread


def test_stratified_bootstrap_iqm_reproducible_and_sane():
    rng = np.random.default_rng(1)
    scores = rng.normal(50, 10, size=(5, 7))  # runs x tasks
    a = stats.stratified_bootstrap_ci(scores, seed=7)
    assert a == stats.stratified_bootstrap_ci(scores, seed=7)
    assert a != stats.stratified_bootstrap_ci(scores, seed=8)
    assert a.point == pytest.approx(sps.trim_mean(scores.reshape(-1), 0.25)) and a.n == 35
    assert a.lo < a.point < a.hi and a.hi - a.lo < 20
    mapping = {f"t{j}": scores[:, j] for j in range(7)}
    assert stats.stratified_bootstrap_ci(mapping, seed=7) == a  # same tasks in sorted order: same draws


def test_performance_profile():
    per_task = {"a": [0.0, 1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0, 7.0]}
    p = stats.performance_profile(per_task, [-1.0, 2.5, 7.0], reps=500, seed=0)
    np.testing.assert_allclose(p.fraction, [1.0, 5 / 8, 0.0])
    assert p.lo[0] == p.hi[0] == 1.0 and p.lo[2] == p.hi[2] == 0.0
    assert p.lo[1] <= 5 / 8 <= p.hi[1]
    # within-task resampling: at tau = 3.5 exactly task b's four runs are above, whatever the resample
    q = stats.performance_profile(per_task, [3.5], reps=500)
    assert q.lo[0] == q.hi[0] == 0.5


def test_probability_of_improvement():
    x = {"a": [2.0, 3.0], "b": [5.0]}
    y = {"a": [0.0, 1.0], "b": [5.0], "c": [9.0]}  # only shared tasks count
    poi = stats.probability_of_improvement(x, y)
    assert poi.point == pytest.approx((1.0 + 0.5) / 2)  # a: always better; b: a tie
    assert stats.probability_of_improvement(y, x).point == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    same = {f"t{i}": rng.normal(size=5) for i in range(4)}
    assert stats.probability_of_improvement(same, same).point == pytest.approx(0.5)
    with pytest.raises(ValueError):
        stats.probability_of_improvement({"a": [1.0]}, {"b": [1.0]})


def test_difference_ci_resamples_each_side_on_its_own():
    x, y = [10.0, 11.0, 12.0], [5.0, 6.0, 7.0, 8.0]
    iv = stats.difference_ci(x, y, reps=4000, seed=1)
    assert iv.point == pytest.approx(11.0 - 6.5) and iv.n == 7 and iv.lo < iv.point < iv.hi
    # the extremes a resample can reach: all-min x minus all-max y, all-max x minus all-min y
    assert 10.0 - 8.0 <= iv.lo and iv.hi <= 12.0 - 5.0 and iv.lo > 0
    assert stats.difference_ci(x, y, reps=4000, seed=1) == iv
    same = stats.difference_ci([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], reps=4000)
    assert same.point == 0.0 and same.lo < 0 < same.hi
    with pytest.raises(ValueError, match="runs on both sides"):
        stats.difference_ci([], [1.0])


def test_nested_bootstrap_carries_seed_and_episode_variation():
    from rlkit2.stats import nested_bootstrap_ci

    # seeds that disagree: the interval spans them; equal seeds: only the episodes' spread remains
    apart = nested_bootstrap_ci([[1.0] * 40, [0.0] * 40, [1.0] * 40, [0.0] * 40], reps=4000)
    same = nested_bootstrap_ci([[1.0] * 20 + [0.0] * 20] * 4, reps=4000)
    assert apart.point == same.point == 0.5 and apart.n == same.n == 4
    assert apart.hi - apart.lo > 2 * (same.hi - same.lo) > 0
    # one seed: the plain bootstrap of its episodes; constant outcomes: a degenerate interval
    one = nested_bootstrap_ci([[1.0, 0.0] * 50], reps=4000)
    assert one.lo < 0.5 < one.hi and one.hi - one.lo < 0.25
    assert nested_bootstrap_ci([[1.0] * 5] * 3).as_dict() == {"point": 1.0, "lo": 1.0, "hi": 1.0, "n": 3}
    assert nested_bootstrap_ci([[1, 0], [0, 1]], seed=3) == nested_bootstrap_ci([[1, 0], [0, 1]], seed=3)
    with pytest.raises(ValueError, match="each with at least one episode"):
        nested_bootstrap_ci([[1.0], []])
