"""Known answers for the statistics' edges: the cases a mutation pass found untested
(issue 23, item 7). Each value is computed by hand in the comment beside it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from harness.report import stats


def test_finite_reads_null_as_missing_and_returns_floats() -> None:
    out = stats.finite([1, None, 3, math.inf])
    assert out.dtype == np.float64 and out.tolist() == [1.0, 3.0]


def test_t_interval_with_two_values_when_allowed() -> None:
    # mean 2, s = √2, n = 2: half-width t(0.975, 1) · √2/√2 = 12.706205
    lo, hi = stats.t_interval([1, 3], min_n=2)
    assert (lo, hi) == (pytest.approx(2 - 12.706205, abs=1e-6), pytest.approx(2 + 12.706205,
                                                                               abs=1e-6))
    assert all(math.isnan(v) for v in stats.t_interval([1], min_n=1))  # never below 2


def test_median_rank_edges() -> None:
    assert stats.median_rank(1) == (1, 0.0)  # 1 − 2 · P(B(1, ½) ≤ 0) = 0
    with pytest.raises(ValueError, match=r"^median_rank needs at least one value$"):
        stats.median_rank(0)
    # level 0 accepts every k up to the middle: 5 seeds -> k = 3, 1 − 2 · P(B ≤ 2) = 0
    assert stats.median_rank(5, level=0.0) == (3, 0.0)
    # 6 seeds -> k = 3, 1 − 2 · 22/64 = 0.3125
    assert stats.median_rank(6, level=0.0) == (3, pytest.approx(0.3125))
    # a confidence exactly at the level is enough: 9 seeds, k = 2 holds 1 − 2 · 10/512
    assert stats.median_rank(9, level=0.9609375) == (2, pytest.approx(0.9609375))


def test_median_level_follows_its_level() -> None:
    assert stats.median_level(9) == pytest.approx(0.9609375)
    # level ½: k = 3, 1 − 2 · 46/512 (k = 4 would give 0.49)
    assert stats.median_level(9, 0.5) == pytest.approx(1 - 2 * 46 / 512)


def test_median_band_edges() -> None:
    with pytest.raises(ValueError, match=r"^median_band expects a seeds x points matrix$"):
        stats.median_band([1.0, 2.0])
    median, lo, hi = stats.median_band([[1, 2]], min_n=1)  # one seed allowed: its value
    assert lo.tolist() == [1.0, 2.0] and hi.tolist() == [1.0, 2.0]
    assert median.dtype == lo.dtype == hi.dtype == np.float64
    _, lo, hi = stats.median_band(np.arange(9).reshape(9, 1), level=0.5)
    assert (lo[0], hi[0]) == (2.0, 6.0)  # k = 3 at level ½ (see above)
    assert lo.dtype == np.float64


def test_paired_test_edges() -> None:
    with pytest.raises(ValueError, match=r"^paired samples must have the same length$"):
        stats.paired_permutation_test([1, 2, 3], [1, 2])
    # exactly three pairs is enough; null is a missing value, dropped with its pair
    t = stats.paired_permutation_test([0, 0, 0, None], [1, 2, 3, 4])
    assert t.available and t.n == 3 and t.p_value == pytest.approx(2 / 8)
    t = stats.paired_permutation_test([0, 0, 0, 0], [1, 2, 3, None])
    assert t.n == 3 and t.p_value == pytest.approx(2 / 8)
    # one pair when allowed: both signs reach |d|, p = 1, and 2/2¹ = 1
    one = stats.paired_permutation_test([0.0], [2.0], min_n=1)
    assert (one.p_value, one.min_p, one.exact) == (1.0, 1.0, True)
    few = stats.paired_permutation_test([0, 0], [1, 2])
    assert few.mean_diff == 1.5 and few.exact is False and math.isnan(few.min_p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        none = stats.paired_permutation_test([], [])
    assert none.n == 0 and math.isnan(none.mean_diff)


def test_paired_test_ties_count_at_any_scale() -> None:
    # d = (1, 1, c): the patterns ±(1, 1, −c) miss |mean d| by 2c/3. Within the tolerance,
    # 1e-12 of the largest |d| (at least 1e-12), they tie with the observed one.
    assert stats.paired_permutation_test([0, 0, 0], [1, 1, 2.25e-12]).p_value == 0.25
    assert stats.paired_permutation_test([0, 0, 0], [1, 1, 0.75e-12]).p_value == 0.5
    # at scale 1000 the tolerance is 1e-9: a gap of 5e-10 is a tie
    assert stats.paired_permutation_test([0, 0, 0], [1000, 1000, 7.5e-10]).p_value == 0.5


def test_paired_test_is_exact_up_to_sixteen_pairs() -> None:
    t = stats.paired_permutation_test(np.zeros(16), np.ones(16))
    assert t.exact and t.p_value == pytest.approx(2 / 2**16) and t.min_p == t.p_value


def test_monte_carlo_p_values_are_reproducible_and_near_the_exact_one() -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(0.3, 1.0, size=17)
    a = np.zeros(17)
    t = stats.paired_permutation_test(a, d, n_permutations=2000)
    assert t.exact is False and t.min_p == pytest.approx(1 / 2000)
    # the same answer every time (a fixed default seed), and another seed's differs
    assert stats.paired_permutation_test(a, d, n_permutations=2000).p_value == t.p_value
    assert stats.paired_permutation_test(a, d, n_permutations=2000, rng=None).p_value \
        == t.p_value
    assert stats.paired_permutation_test(
        a, d, n_permutations=2000, rng=stats.DEFAULT_SEED).p_value == t.p_value
    others = {stats.paired_permutation_test(a, d, n_permutations=2000, rng=s).p_value
              for s in (1, 2, 3)}
    assert others != {t.p_value}
    gen = np.random.default_rng(1)
    assert stats.paired_permutation_test(a, d, n_permutations=2000, rng=gen).p_value \
        == stats.paired_permutation_test(a, d, n_permutations=2000, rng=1).p_value
    # the exact p-value over all 2^17 sign patterns, for comparison
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * 17)).reshape(17, -1).T
    exact = float(np.mean(np.abs(signs @ d) >= abs(d.sum()) - 1e-9))
    assert abs(t.p_value - exact) < 4 * math.sqrt(exact * (1 - exact) / 2000) + 1e-3


def test_monte_carlo_counts_the_observed_pattern() -> None:
    # one permutation: the observed pattern itself, so p = 1 and never 0
    t = stats.paired_permutation_test(np.zeros(20), np.arange(1.0, 21.0), n_permutations=1)
    assert t.p_value == 1.0 and t.min_p == 1.0


def test_holm_floors_read_null_and_seeds_needed_at_the_edges() -> None:
    floors = stats.holm_floors([0.1, None])
    assert floors[0] == pytest.approx(0.1) and math.isnan(floors[1])
    assert stats.seeds_needed(1.0) == 1  # 2/2¹ = 1 reaches a level of 1
    assert stats.seeds_needed(0.05) == 6 and stats.seeds_needed(0.05, 5) == 8
    for alpha, m in ((1.5, 1), (0.0, 1), (0.05, 0)):
        with pytest.raises(ValueError, match=r"^seeds_needed needs 0 < alpha <= 1 and at least "
                                             r"one comparison$"):
            stats.seeds_needed(alpha, m)


def test_holm_never_above_one_and_reads_null() -> None:
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0]  # 2 · 0.6 = 1.2, capped
    adjusted = stats.holm([0.01, None])
    assert adjusted[0] == pytest.approx(0.01) and math.isnan(adjusted[1])


def test_zero_and_sub_unit_costs_are_not_misses() -> None:
    # cost 0: met at step 0 (ratio 1, every other optimizer infinitely worse); 0.5 s is
    # a cost like any other
    times = pd.DataFrame({"A": [0.0, 0.5, 1.0], "B": [3.0, 1.0, 2.0]}, index=["p", "q", "r"])
    ratios = stats.performance_ratios(times)
    assert ratios["A"].tolist() == [1.0, 1.0, 1.0]
    assert ratios["B"].tolist() == [math.inf, 2.0, 2.0]
    both = stats.performance_ratios(pd.DataFrame({"A": [0.0], "B": [0.0]}))
    assert both.iloc[0].tolist() == [1.0, 1.0]
    negative = stats.performance_ratios(pd.DataFrame({"A": [-1.0], "B": [2.0]}))
    assert negative.iloc[0].tolist() == [math.inf, 1.0]


def test_the_default_profile_axis() -> None:
    times = pd.DataFrame({"A": [1.0], "B": [2.0]})
    profile = stats.performance_profile(times)
    assert profile.index.name == "tau" and len(profile) == 301
    assert profile.index[0] == 1.0 and profile.index[-1] == 4.0
    assert profile.index[1] == pytest.approx(1.01)
    assert profile["B"].iloc[99] == 0.0 and profile["B"].iloc[100] == 1.0  # τ = 2
    ints = stats.performance_profile(times, taus=[1, 2])
    assert ints.index.dtype == np.float64 and ints["B"].tolist() == [0.0, 1.0]


def test_profile_edges() -> None:
    empty = pd.DataFrame({"A": [], "B": []}, dtype=float)
    profile = stats.performance_profile(empty, taus=[1.0, 2.0])
    assert profile.shape == (2, 2) and profile.isna().all().all()
    assert (profile.dtypes == np.float64).all()
    assert stats.performance_profile(pd.DataFrame({"A": [1.0]}), taus=[]).shape == (0, 1)
    score = stats.profile_score(empty)
    assert score.empty and score.dtype == np.float64
    one = stats.profile_score(pd.DataFrame({"A": [1.0], "B": [2.5]}))
    assert one["A"] == 1.0 and one["B"] == pytest.approx(0.5)  # (4 − 2.5) / 3
    # C ran nothing: no division warning, NaN profile
    times = pd.DataFrame({"A": [1.0, 2.0], "B": [2.0, 1.0], "C": [math.nan, math.nan]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        profile = stats.performance_profile(times, taus=[1.0])
    assert profile["A"].iloc[0] == 0.5 and math.isnan(profile["C"].iloc[0])


def test_common_axis_edges() -> None:
    axis, matrix = stats.common_axis([([0, 1, 2], [0, 1, 2])])
    assert len(axis) == 120 and matrix.shape == (1, 120)
    # a point whose value is missing is dropped (not interpolated through)
    _, matrix = stats.common_axis([([0, 1, 2], [0, math.nan, 2])], n_points=3)
    assert matrix.tolist() == [[0.0, 1.0, 2.0]]
    _, matrix = stats.common_axis([([0, None, 2], [0, 5, 2])], n_points=3)
    assert matrix.tolist() == [[0.0, 1.0, 2.0]]
    _, matrix = stats.common_axis([([0, 1, 2], [0, None, 2])], n_points=3)
    assert matrix.tolist() == [[0.0, 1.0, 2.0]]
    # one curve of a single point: the shared range is that point
    axis, matrix = stats.common_axis([([1], [5]), ([0, 2], [0, 2])])
    assert axis.tolist() == [1.0] and matrix.tolist() == [[5.0], [1.0]]
    for curves in ([([math.nan], [1.0]), ([0, 1], [0, 1])], [], [([0, 1], [1, 1]),
                                                                  ([2, 3], [1, 1])]):
        axis, matrix = stats.common_axis(curves)
        assert axis.shape == (0,) and matrix.shape == (0, 0)


def test_spans_decades_at_the_boundary() -> None:
    assert stats.spans_decades([1.0, 100.0])  # exactly two decades
    assert not stats.spans_decades([1.0, 99.0])
    assert stats.spans_decades([1.0, 1000.0], decades=3.0)
    assert not stats.spans_decades([0.0, 1000.0])
