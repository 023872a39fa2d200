"""The report's statistics against answers known in advance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.report import stats


def test_bootstrap_interval_covers_a_known_mean() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 2.0, size=40)
    lo, hi = stats.bootstrap_ci(x)
    assert lo < 5.0 < hi
    assert lo < x.mean() < hi
    # the interval is about 2 × 1.96 × σ/√n wide
    assert 0.6 < hi - lo < 1.8


def test_bootstrap_interval_coverage_is_near_95_percent() -> None:
    # The percentile bootstrap of a mean of 30 normal values covers about 93% of the time.
    rng = np.random.default_rng(11)
    hits = 0
    trials = 1000
    for i in range(trials):
        sample = rng.normal(10.0, 3.0, size=30)
        lo, hi = stats.bootstrap_ci(sample, n_boot=1000, rng=i)
        hits += lo <= 10.0 <= hi
    assert 0.90 <= hits / trials <= 0.97


def test_bootstrap_interval_of_the_median_and_reproducible() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 100.0]
    lo, hi = stats.bootstrap_ci(x, np.median)
    assert 1.0 <= lo <= 3.0 <= hi <= 100.0
    assert stats.bootstrap_ci(x, np.median) == (lo, hi)  # fixed default seed


def test_bootstrap_interval_unavailable_with_fewer_than_three_values() -> None:
    assert all(math.isnan(v) for v in stats.bootstrap_ci([1.0, 2.0]))
    assert all(math.isnan(v) for v in stats.bootstrap_ci([1.0, 2.0, math.nan]))


def test_median_band() -> None:
    m = np.array([[1.0, 2.0, 3.0]] * 4)
    median, lo, hi = stats.median_band(m)
    np.testing.assert_allclose(median, [1, 2, 3])
    np.testing.assert_allclose(lo, [1, 2, 3])
    np.testing.assert_allclose(hi, [1, 2, 3])
    m = np.array([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    median, lo, hi = stats.median_band(m)
    np.testing.assert_allclose(median, [2, 20])
    assert (lo <= median).all() and (median <= hi).all() and (lo < hi).all()
    median, lo, hi = stats.median_band(m[:2])
    np.testing.assert_allclose(median, [0.5, 5])
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_paired_test_hand_computed() -> None:
    # differences 1, 2, 3, -1: |sum| = 5; of the 16 sign patterns, sums 7, 5, 5 and
    # their negatives reach it: p = 6/16
    t = stats.paired_permutation_test([0, 0, 0, 0], [1, 2, 3, -1])
    assert t.exact and t.n == 4
    assert t.mean_diff == pytest.approx(1.25)
    assert t.p_value == pytest.approx(6 / 16)
    assert t.min_p == pytest.approx(2 / 16)


def test_paired_test_uses_the_pairing() -> None:
    # Seeds differ wildly, yet b beats a by 0.1 on every seed: an unpaired view sees noise,
    # the paired test the smallest p-value six pairs can give.
    a = np.array([1.0, 5.0, 9.0, 2.0, 7.0, 3.0])
    b = a - 0.1
    t = stats.paired_permutation_test(a, b)
    assert t.p_value == pytest.approx(2 / 2**6)
    assert t.mean_diff == pytest.approx(-0.1)
    same = stats.paired_permutation_test(a, a)
    assert same.p_value == pytest.approx(1.0)
    balanced = stats.paired_permutation_test([0, 0, 0, 0], [1, -1, 2, -2])
    assert balanced.p_value == pytest.approx(1.0)


def test_paired_test_drops_incomplete_pairs_and_needs_three() -> None:
    t = stats.paired_permutation_test([1, 2, math.nan, 4], [2, 3, 5, math.nan])
    assert t.n == 2 and not t.available
    with pytest.raises(ValueError):
        stats.paired_permutation_test([1, 2, 3], [1, 2])


def test_paired_test_monte_carlo_above_sixteen_pairs() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=24)
    t = stats.paired_permutation_test(a, a + 1.0 + 0.1 * rng.normal(size=24))
    assert not t.exact and t.p_value < 0.001


def test_holm() -> None:
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan])
    np.testing.assert_allclose(adjusted[:3], [0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]


def _times() -> pd.DataFrame:
    inf = math.inf
    return pd.DataFrame({"A": [10.0, 30.0, 5.0], "B": [20.0, 10.0, inf]},
                        index=["p1", "p2", "p3"])


def test_performance_profile_hand_computed() -> None:
    # ratios: A = 1, 3, 1; B = 2, 1, never
    profile = stats.performance_profile(_times(), taus=[1.0, 1.5, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(profile["A"], [2 / 3, 2 / 3, 2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(profile["B"], [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3])
    # area over [1, 4] / 3: A has (3 + 1 + 3) / 3 problems, B (2 + 3 + 0) / 3
    score = stats.profile_score(_times())
    assert score["A"] == pytest.approx(7 / 9)
    assert score["B"] == pytest.approx(5 / 9)


def test_performance_profile_unsolved_problem_is_a_miss_for_everyone() -> None:
    times = pd.concat([_times(), pd.DataFrame({"A": [math.inf], "B": [math.nan]},
                                              index=["p4"])])
    score = stats.profile_score(times)
    assert score["A"] == pytest.approx(7 / 12)
    assert score["B"] == pytest.approx(5 / 12)
    assert stats.performance_profile(times, taus=[4.0])["A"].iloc[0] == pytest.approx(3 / 4)


def test_profile_score_is_the_area_under_the_profile() -> None:
    rng = np.random.default_rng(5)
    times = pd.DataFrame(rng.uniform(1, 10, size=(7, 4)), columns=list("abcd"))
    times.iloc[2, 1] = math.inf
    taus = np.linspace(1, 4, 30001)
    profile = stats.performance_profile(times, taus)
    area = profile.apply(lambda col: np.trapezoid(col, taus)) / 3
    np.testing.assert_allclose(stats.profile_score(times), area, atol=1e-3)


def test_common_axis_resamples_onto_the_shared_range() -> None:
    x1 = np.array([0.0, 1.0, 2.0, 3.0])
    x2 = np.array([0.5, 1.5, 2.5, 3.5, 4.0])
    axis, matrix = stats.common_axis([(x1, 2 * x1), (x2, 3 * x2 + 1)], n_points=11)
    np.testing.assert_allclose(axis, np.linspace(0.5, 3.0, 11))
    np.testing.assert_allclose(matrix[0], 2 * axis)
    np.testing.assert_allclose(matrix[1], 3 * axis + 1)
    axis, matrix = stats.common_axis([([0, 1], [1, 1]), ([2, 3], [1, 1])])
    assert axis.size == 0 and matrix.size == 0
    axis, matrix = stats.common_axis([([1, 0, 2], [10, 0, 20]), ([0, 2, np.nan], [0, 2, 5])],
                                     n_points=3)
    np.testing.assert_allclose(matrix, [[0, 10, 20], [0, 1, 2]])


def test_spans_decades() -> None:
    assert stats.spans_decades([0.001, 0.5, 1.0])
    assert not stats.spans_decades([0.1, 0.5, 1.0])
    assert not stats.spans_decades([-1.0, 1000.0])
    assert not stats.spans_decades([math.nan])
