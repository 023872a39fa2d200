"""The report's statistics against answers known in advance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.report import stats


def test_t_interval_hand_computed() -> None:
    # mean 2, s = 1, n = 3: half-width t(0.975, 2) · 1/√3 = 4.302653 / 1.732051 = 2.484138
    lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    assert lo == pytest.approx(2 - 2.484138, abs=1e-6)
    assert hi == pytest.approx(2 + 2.484138, abs=1e-6)
    assert stats.t_interval([4.0, 4.0, 4.0]) == (4.0, 4.0)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_t_interval_holds_the_mean_95_percent_of_the_time_with_few_seeds(n: int) -> None:
    # The reason the report does not use a percentile bootstrap: with 3 seeds that is the
    # seeds' range and holds the mean about 76% of the time.
    rng = np.random.default_rng(11 + n)
    samples = rng.normal(10.0, 3.0, size=(4000, n))
    hits = sum(lo <= 10.0 <= hi for lo, hi in (stats.t_interval(x) for x in samples))
    assert 0.935 <= hits / len(samples) <= 0.965


def test_t_interval_unavailable_with_fewer_than_three_values() -> None:
    assert all(math.isnan(v) for v in stats.t_interval([1.0, 2.0]))
    assert all(math.isnan(v) for v in stats.t_interval([1.0, 2.0, math.nan]))


@pytest.mark.parametrize(("n", "k", "confidence"), [
    (3, 1, 0.75), (4, 1, 0.875), (5, 1, 0.9375), (6, 1, 1 - 2 / 64),
    (9, 2, 1 - 2 * 10 / 512), (20, 6, 0.9586105),
])
def test_median_rank_hand_computed(n: int, k: int, confidence: float) -> None:
    # [x_(k), x_(n-k+1)] holds the median unless k or more values fall on one side:
    # 1 − 2·P(Binomial(n, ½) ≤ k − 1).
    assert stats.median_rank(n) == (k, pytest.approx(confidence, abs=1e-6))


def test_median_band_holds_the_median_as_often_as_it_says() -> None:
    rng = np.random.default_rng(5)
    for n in (3, 5, 8):
        # exponential values (skewed): the median of Exp(1) is ln 2
        hits = 0
        for _ in range(3000):
            _, lo, hi = stats.median_band(rng.exponential(size=(n, 1)))
            hits += lo[0] <= math.log(2) <= hi[0]
        assert hits / 3000 == pytest.approx(stats.median_level(n), abs=0.025)


def test_median_band() -> None:
    m = np.array([[1.0, 2.0, 3.0]] * 4)
    median, lo, hi = stats.median_band(m)
    np.testing.assert_allclose(median, [1, 2, 3])
    np.testing.assert_allclose(lo, [1, 2, 3])
    np.testing.assert_allclose(hi, [1, 2, 3])
    m = np.array([[0.0, 0.0], [1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    median, lo, hi = stats.median_band(m[[3, 0, 4, 2, 1]])
    np.testing.assert_allclose(median, [2, 20])
    np.testing.assert_allclose(lo, [0, 0])  # 5 seeds: the range (93.75%)
    np.testing.assert_allclose(hi, [4, 40])
    nine = np.arange(9.0).reshape(9, 1)
    _, lo, hi = stats.median_band(nine)
    assert (lo[0], hi[0]) == (1.0, 7.0)  # 9 seeds: second smallest to second largest
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


def test_smallest_reachable_p_hand_computed() -> None:
    """The floor is the p-value of every difference on one side: 2/2ⁿ, each exact zero
    doubling it (its sign changes nothing)."""
    three = stats.paired_permutation_test([0, 0, 0], [1.0, -2.0, 0.5])
    assert three.min_p == pytest.approx(2 / 8)  # 0.25: no 3-seed outcome reaches 0.05
    five = stats.paired_permutation_test([0] * 5, [1.0, 2, 3, 4, 5])
    assert five.min_p == five.p_value == pytest.approx(0.0625)
    six = stats.paired_permutation_test([0] * 6, [1.0, 2, 3, 4, 5, -6])
    assert six.min_p == pytest.approx(1 / 32) and six.p_value > six.min_p
    # one zero among four: patterns with that sign flipped tie, 4 of 16 are extreme
    zero = stats.paired_permutation_test([0] * 4, [0.0, 1, 2, 3])
    assert zero.min_p == zero.p_value == pytest.approx(4 / 16)
    assert stats.paired_permutation_test([1, 2, 3], [1, 2, 3]).min_p == pytest.approx(1.0)
    mc = stats.paired_permutation_test(np.zeros(20), np.arange(1.0, 21.0))
    assert not mc.exact and mc.min_p == pytest.approx(1 / stats.N_PERMUTATIONS)


def test_holm_floors_and_seeds_needed_hand_computed() -> None:
    # three comparisons at 6 seeds: each adjusted p is at least 3 x 1/32 = 0.09375
    assert stats.holm_floors([1 / 32] * 3) == pytest.approx([0.09375] * 3)
    floors = stats.holm_floors([0.25, 1 / 16, math.nan])
    assert floors[:2] == pytest.approx([0.25, 0.125]) and math.isnan(floors[2])
    assert stats.holm_floors([0.5, 0.5, 0.5]) == [1.0, 1.0, 1.0]
    assert all(math.isnan(v) for v in stats.holm_floors([math.nan]))
    # the least n with 2m/2^n <= alpha
    assert stats.seeds_needed(0.05) == 6  # 2/64 = 0.031; 2/32 = 0.0625 is not enough
    assert stats.seeds_needed(0.05, 2) == 7  # 4/128 = 0.031; 4/64 = 0.0625
    assert stats.seeds_needed(0.05, 3) == 7  # 6/128 = 0.047
    assert stats.seeds_needed(0.05, 5) == 8  # 10/256 = 0.039; 10/128 = 0.078
    assert stats.seeds_needed(0.0625) == 5 and stats.seeds_needed(0.25) == 3
    with pytest.raises(ValueError):
        stats.seeds_needed(0.0)


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
    times = pd.concat([_times(), pd.DataFrame({"A": [math.inf], "B": [math.inf]},
                                              index=["p4"])])
    score = stats.profile_score(times)
    assert score["A"] == pytest.approx(7 / 12)
    assert score["B"] == pytest.approx(5 / 12)
    assert stats.performance_profile(times, taus=[4.0])["A"].iloc[0] == pytest.approx(3 / 4)


def test_performance_profile_scores_an_optimizer_over_the_problems_it_ran() -> None:
    # C ran only p1 and p4 (NaN: not run, not a miss). p4's best is C's, so A's p4 ratio
    # is 2; on p1 C is 4× A's 10 s.
    times = pd.concat([_times(), pd.DataFrame({"A": [8.0], "B": [math.nan]}, index=["p4"])])
    times["C"] = [40.0, math.nan, math.nan, 4.0]
    ratios = stats.performance_ratios(times)
    assert ratios.loc["p4", "A"] == pytest.approx(2.0)
    assert math.isnan(ratios.loc["p4", "B"]) and math.isnan(ratios.loc["p2", "C"])
    profile = stats.performance_profile(times, taus=[1.0, 4.0])
    np.testing.assert_allclose(profile["C"], [1 / 2, 1.0])
    np.testing.assert_allclose(profile["B"], [1 / 3, 2 / 3])  # over p1-p3, as before
    score = stats.profile_score(times)
    assert score["B"] == pytest.approx(5 / 9)  # unchanged: p4 is not a miss for B
    assert score["C"] == pytest.approx((0 + 3) / (2 * 3))
    assert score["A"] == pytest.approx((3 + 1 + 3 + 2) / (4 * 3))


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
