"""Statistics across seeds: intervals, a paired test, performance profiles.

Everything here is deterministic (the Monte Carlo test has a fixed default random
seed), so a report rebuilt from the same run is byte-for-byte the same and the tests
can check known answers.

Choices, and why:

* **The interval of a mean** respects the metric's range (:func:`range_interval`). Seeds
  that are all positive (a loss, an accuracy, a time) get the **log-scale t** interval:
  Student's t interval of the mean of the logarithms, exp(mean(log x) ± t(n−1) · s_log/√n),
  an interval for the geometric mean that never reaches zero, and multiplicative, as the
  spread of a loss over seeds tends to be. Seeds that may be negative (a return) get
  **Student's t** interval, mean ± t(n−1) · s/√n; non-negative seeds with a zero among
  them, that interval cut at zero (**Student's t truncated at 0**: the true mean lies in
  the range, so cutting keeps the level). Seed counts are small (3 to 10), and there a
  percentile bootstrap is far too narrow: with 3 seeds it is the seeds' own minimum and
  maximum, which holds the true mean about 76 % of the time, not 95 % (83 % with 5 seeds).
  With fewer than :data:`MIN_SEEDS` seeds an interval says nothing useful, so it is
  reported as unavailable (NaN) rather than drawn.
* **The band of a median curve** is the distribution-free interval of a median from
  order statistics: the k-th smallest and k-th largest seed, k as large as the level
  allows (Binomial(n, ½)). It needs no distribution at all, but small n cannot reach
  95 %: with fewer than 6 seeds the band is the seeds' full range, whose confidence
  1 − 2/2ⁿ (75 % for 3 seeds, 87.5 % for 4, 93.8 % for 5) :func:`median_level` gives
  and the report states.
* **The paired test** is a sign-flip permutation test on the per-seed differences
  (exact over all 2ⁿ sign patterns up to 16 seeds, Monte Carlo above). Seeds pair
  up because two optimizers given the same seed share the initialisation and the
  data order, so the per-seed difference removes the seed's own luck. Under the
  null hypothesis the sign of each difference is a coin flip; the test needs no
  normality. Its smallest attainable two-sided p-value is 2/2ⁿ (0.0625 with 5 seeds;
  larger when some differences are exactly zero, whose signs change nothing), which
  the report states next to the numbers. When that floor is above the significance
  level :data:`ALPHA` no outcome of the test could separate the two arms, and the report
  says "too few seeds" instead of a p-value (:func:`seeds_needed` says how many would do).
* **Holm's step-down correction** adjusts the p-values of the comparisons of one
  problem (best against each other optimizer) for their number m. No adjusted p-value
  can go below m times the smallest raw floor (:func:`holm_floors`), so m comparisons
  need more seeds than one.
* **Performance profiles** follow AlgoPerf: a miss counts as never (infinite time);
  ρ(τ) is the fraction of problems whose time is within τ of the best, and the
  score is the normalised area under ρ for τ in [1, τ_max], computed exactly. An
  optimizer is scored over the problems it was run on (a grid may give a problem's
  networks their own optimizers, which makes an arm of its own); a problem it was
  not run on is not a miss.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
import scipy.special
from numpy.typing import ArrayLike, NDArray

#: Fewer seeds than this: intervals and tests are reported as unavailable.
MIN_SEEDS = 3
#: The confidence level of every interval and band.
LEVEL = 0.95
#: The names of the intervals :func:`range_interval` chooses from (the report's methods
#: section and ranking.csv's ``ci_method`` use them).
INTERVAL_LOG_T = "log-scale t"
INTERVAL_T = "Student's t"
INTERVAL_T_TRUNCATED = "Student's t truncated at 0"
#: The names of the paired test and its correction.
PAIRED_TEST = "sign-flip permutation test"
CORRECTION = "Holm"
#: The significance level the report's verdicts use.
ALPHA = 0.05
#: Up to this many pairs the permutation test enumerates every sign pattern.
EXACT_MAX_PAIRS = 16
#: Monte Carlo sign patterns above :data:`EXACT_MAX_PAIRS`.
N_PERMUTATIONS = 20_000
#: Performance profiles run τ from 1 to this, as AlgoPerf does.
TAU_MAX = 4.0
DEFAULT_SEED = 20240531

Floats = NDArray[np.float64]


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(DEFAULT_SEED if rng is None else rng)


def finite(values: ArrayLike) -> Floats:
    """The finite values of ``values`` as a flat float array."""
    arr: Floats = np.asarray(values, dtype=float).ravel()
    out: Floats = arr[np.isfinite(arr)]
    return out


def t_interval(values: ArrayLike, *, level: float = LEVEL,
               min_n: int = MIN_SEEDS) -> tuple[float, float]:
    """Student's t interval for the mean of the finite ``values``.

    Returns ``(nan, nan)`` with fewer than ``min_n`` values: too few seeds for an
    interval. Equal values give a zero-width interval.
    """
    x = finite(values)
    n = len(x)
    if n < max(min_n, 2):
        return (math.nan, math.nan)
    # Student's t quantile: what scipy.stats.t.ppf computes, without importing scipy.stats
    # (half a second, and nothing else in a report needs it)
    quantile = float(scipy.special.stdtrit(n - 1, 0.5 + level / 2))
    half = quantile * float(x.std(ddof=1)) / math.sqrt(n)
    mean = float(x.mean())
    return (mean - half, mean + half)


def log_t_interval(values: ArrayLike, *, level: float = LEVEL,
                   min_n: int = MIN_SEEDS) -> tuple[float, float]:
    """The t interval of the mean of ``log(values)``, back-transformed: an interval for the
    geometric mean of positive values, always above zero.

    :raises ValueError: a finite value is not positive.
    """
    x = finite(values)
    if (x <= 0).any():
        raise ValueError("log_t_interval needs positive values")
    lo, hi = t_interval(np.log(x), level=level, min_n=min_n)
    return (math.exp(lo), math.exp(hi)) if math.isfinite(lo) else (math.nan, math.nan)


def range_interval(values: ArrayLike, *, level: float = LEVEL,
                   min_n: int = MIN_SEEDS) -> tuple[float, float, str]:
    """The interval of the seeds' values that respects their range, and its name: log-scale t
    when all are positive, Student's t cut at zero when none is negative, Student's t
    otherwise (see the module docstring). ``(nan, nan, name)`` with fewer than ``min_n``."""
    x = finite(values)
    if len(x) and (x > 0).all():
        return (*log_t_interval(x, level=level, min_n=min_n), INTERVAL_LOG_T)
    lo, hi = t_interval(x, level=level, min_n=min_n)
    if len(x) and (x >= 0).all():
        return (max(lo, 0.0) if math.isfinite(lo) else lo, hi, INTERVAL_T_TRUNCATED)
    return (lo, hi, INTERVAL_T)


def median_rank(n: int, level: float = LEVEL) -> tuple[int, float]:
    """For ``n`` values: the largest k (1-based) such that the k-th smallest and the
    k-th largest value hold the median with at least ``level`` confidence, and that
    confidence; with too few values for ``level``, k = 1 (the full range) and its
    confidence 1 − 2/2ⁿ."""
    if n < 1:
        raise ValueError("median_rank needs at least one value")
    # P(X ≤ k - 1) for X ~ Binomial(n, ½), exactly: the sum of C(n, i) for i < k over 2ⁿ,
    # kept as integers and rounded once to a float
    below = 1
    best = (1, 1 - 2 * float(Fraction(below, 2 ** n)))
    for k in range(2, (n + 1) // 2 + 1):
        below += math.comb(n, k - 1)
        confidence = 1 - 2 * float(Fraction(below, 2 ** n))
        if confidence < level:
            break
        best = (k, confidence)
    return best


def median_level(n: int, level: float = LEVEL) -> float:
    """The confidence of :func:`median_band`'s band over ``n`` seeds: ``level`` or more
    when n allows it (6 seeds or more for 95 %), less otherwise."""
    return median_rank(n, level)[1]


def median_band(
    matrix: ArrayLike,
    *,
    level: float = LEVEL,
    min_n: int = MIN_SEEDS,
) -> tuple[Floats, Floats, Floats]:
    """Median over seeds (rows) at each point (column), with its order-statistic band.

    At each point the band runs from the k-th smallest to the k-th largest seed, k
    from :func:`median_rank` (pointwise, distribution-free). With fewer than ``min_n``
    rows the band is NaN (not drawn).
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError("median_band expects a seeds x points matrix")
    median = np.median(m, axis=0)
    n = m.shape[0]
    if n < max(min_n, 1):
        nan = np.full(m.shape[1], np.nan)
        return median, nan, nan.copy()
    k, _ = median_rank(n, level)
    ordered = np.sort(m, axis=0)
    return median, ordered[k - 1].copy(), ordered[n - k].copy()


@dataclass(frozen=True)
class PairedTest:
    """The outcome of a paired comparison; ``p_value`` is NaN when unavailable."""

    n: int
    mean_diff: float
    p_value: float
    exact: bool
    #: The smallest two-sided p-value these pairs can give: 2/2ⁿ when exact and no
    #: difference is zero (each zero doubles it), 1/N with N Monte Carlo patterns.
    min_p: float

    @property
    def available(self) -> bool:
        return math.isfinite(self.p_value)


def paired_permutation_test(
    a: ArrayLike,
    b: ArrayLike,
    *,
    min_n: int = MIN_SEEDS,
    n_permutations: int = N_PERMUTATIONS,
    rng: np.random.Generator | int | None = None,
) -> PairedTest:
    """Two-sided sign-flip permutation test of mean(b - a) = 0 over pairs.

    ``a[i]`` and ``b[i]`` are the same seed's results; pairs with a non-finite
    member are dropped. The p-value counts the sign patterns whose absolute mean
    difference is at least the observed one (the observed pattern included, so it
    is never 0).
    """
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError("paired samples must have the same length")
    keep = np.isfinite(x) & np.isfinite(y)
    d = y[keep] - x[keep]
    n = len(d)
    mean_diff = float(d.mean()) if n else math.nan
    if n < max(min_n, 1):
        return PairedTest(n, mean_diff, math.nan, False, math.nan)
    observed = abs(d.mean())
    # A tolerance so that ties with the observed value count as "at least as extreme".
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    if n <= EXACT_MAX_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        exact = True
    else:
        signs = _rng(rng).choice(np.array([1.0, -1.0]), size=(n_permutations, n))
        signs[0] = 1.0  # the observed pattern
        exact = False
    means = np.abs(signs @ d) / n
    p = float(np.mean(means >= observed - tol))
    # the floor: the p-value of the most extreme outcome, every difference on one side
    floor = float(np.mean(means >= float(np.abs(d).mean()) - tol)) if exact \
        else 1.0 / len(signs)
    return PairedTest(n, mean_diff, p, exact, floor)


def holm_floors(floors: Sequence[float]) -> list[float]:
    """The smallest Holm-adjusted p-value each of one family's comparisons can reach, from
    their raw floors (:attr:`PairedTest.min_p`): at least its own floor and m times the
    family's smallest, m the number of comparisons with a floor (NaN entries stay NaN).
    Every adjusted p-value is at least the first one, m times the smallest raw p-value."""
    f = np.asarray(floors, dtype=float)
    known = f[np.isfinite(f)]
    if not len(known):
        return [math.nan] * len(f)
    lowest = len(known) * float(known.min())
    return [float(min(1.0, max(v, lowest))) if math.isfinite(v) else math.nan for v in f]


def seeds_needed(alpha: float = ALPHA, comparisons: int = 1) -> int:
    """The fewest seeds (pairs, none with a zero difference) with which the exact sign-flip
    test, Holm-adjusted over ``comparisons``, can reach ``alpha``: the least n with
    2·m/2ⁿ ≤ alpha (6 for one comparison at 0.05, 8 for five)."""
    if not 0 < alpha <= 1 or comparisons < 1:
        raise ValueError("seeds_needed needs 0 < alpha <= 1 and at least one comparison")
    return max(1, math.ceil(math.log2(2 * comparisons / alpha) - 1e-12))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return [float(v) for v in out]


def performance_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """Each entry over its row's best: problems are rows, optimizers columns.

    Costs are non-negative (zero: the target was met at initialisation, step 0; a negative
    cost counts as a miss), a miss is ``inf``, and NaN means the optimizer was not run on
    that problem: its ratio stays NaN and the row's best is over the others. A problem
    that no optimizer solved has every ratio ``inf``: it counts as a miss for all of
    them. On a problem whose best cost is zero, the optimizers at zero have ratio 1 and
    every other one ``inf``.
    """
    t = times.astype(float)
    not_run = t.isna()
    t = t.where(t >= 0, np.inf).mask(not_run)
    best = t.min(axis=1)
    ratios = t.div(best.where(np.isfinite(best) & (best > 0)), axis=0)
    free = (best == 0).to_numpy()
    if free.any():
        ratios.loc[free] = np.where(t.loc[free] == 0, 1.0, np.inf)
    return ratios.fillna(np.inf).mask(not_run)


def performance_profile(
    times: pd.DataFrame, taus: ArrayLike | None = None
) -> pd.DataFrame:
    """ρ_s(τ): fraction of the problems optimizer s ran whose ratio to the best is at
    most τ.

    Returns a frame indexed by τ (default 1 to :data:`TAU_MAX` in 301 steps) with
    one column per optimizer.
    """
    grid = np.linspace(1.0, TAU_MAX, 301) if taus is None else np.asarray(taus, dtype=float)
    ratios = performance_ratios(times)
    r = ratios.to_numpy(dtype=float)  # problems x optimizers
    ran = np.isfinite(r) | np.isinf(r)
    counts = ran.sum(axis=0)
    if len(r) == 0:
        values = np.full((len(grid), r.shape[1]), np.nan)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.stack([(r <= tau).sum(axis=0) / counts for tau in grid]) \
                if len(grid) else np.empty((0, r.shape[1]))
    return pd.DataFrame(values, index=pd.Index(grid, name="tau"), columns=ratios.columns)


def profile_score(times: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.Series:
    """Area under ρ_s(τ) for τ in [1, τ_max], divided by (τ_max − 1): a score in [0, 1].

    ρ is a step function, so the area is exact: each problem the optimizer ran
    contributes ``(τ_max − max(r, 1))⁺`` for its ratio ``r``.
    """
    ratios = performance_ratios(times)
    if len(ratios) == 0:
        return pd.Series(dtype=float)
    width = tau_max - 1.0
    contrib = (tau_max - ratios.clip(lower=1.0)).clip(lower=0.0)
    ran = ratios.notna().sum(axis=0)
    return (contrib.sum(axis=0) / (ran.where(ran > 0) * width)).astype(float)


def common_axis(
    curves: Sequence[tuple[ArrayLike, ArrayLike]], n_points: int = 120
) -> tuple[Floats, Floats]:
    """Resample several (x, y) curves onto one shared x axis by linear interpolation.

    The axis covers only the range every curve has data for (from the largest
    first x to the smallest last x), so each point's median is over all seeds
    rather than over whichever seeds happen to reach it. Returns ``(axis, matrix)``
    with one row per curve; empty arrays when the curves share no range.
    """
    cleaned: list[tuple[Floats, Floats]] = []
    for xs, ys in curves:
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x) == 0:
            return np.empty(0), np.empty((0, 0))
        order = np.argsort(x, kind="stable")
        cleaned.append((x[order], y[order]))
    if not cleaned:
        return np.empty(0), np.empty((0, 0))
    lo = max(float(x[0]) for x, _ in cleaned)
    hi = min(float(x[-1]) for x, _ in cleaned)
    if hi < lo:
        return np.empty(0), np.empty((0, 0))
    axis = np.array([lo]) if hi == lo else np.linspace(lo, hi, n_points)
    matrix = np.vstack([np.interp(axis, x, y) for x, y in cleaned])
    return axis, matrix


def spans_decades(values: ArrayLike, decades: float = 2.0) -> bool:
    """True when the positive values span at least ``decades`` orders of magnitude.

    Non-positive values rule a log scale out.
    """
    x = finite(values)
    if len(x) == 0 or (x <= 0).any():
        return False
    return bool(math.log10(float(x.max()) / float(x.min())) >= decades)
