"""Statistics across seeds: bootstrap intervals, a paired test, performance profiles.

Everything here is numpy only and deterministic (a fixed default random seed), so a
report rebuilt from the same run is byte-for-byte the same and the tests can check
known answers.

Choices, and why:

* **Intervals** are percentile-bootstrap intervals (2,000 resamples). They assume
  nothing about the shape of the distribution over seeds, which for final losses is
  often skewed. With fewer than :data:`MIN_SEEDS` seeds an interval says nothing
  useful, so it is reported as unavailable (NaN) rather than drawn.
* **The paired test** is a sign-flip permutation test on the per-seed differences
  (exact over all 2ⁿ sign patterns up to 16 seeds, Monte Carlo above). Seeds pair
  up because two optimizers given the same seed share the initialisation and the
  data order, so the per-seed difference removes the seed's own luck. Under the
  null hypothesis the sign of each difference is a coin flip; the test needs no
  normality. Its smallest attainable two-sided p-value is 2/2ⁿ (0.0625 with 5 seeds),
  which the report states next to the numbers.
* **Holm's step-down correction** adjusts the p-values of the comparisons of one
  problem (best against each other optimizer) for their number.
* **Performance profiles** follow AlgoPerf: a miss counts as never (infinite time);
  ρ(τ) is the fraction of problems whose time is within τ of the best, and the
  score is the normalised area under ρ for τ in [1, τ_max], computed exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

#: Fewer seeds than this: intervals and tests are reported as unavailable.
MIN_SEEDS = 3
#: Bootstrap resamples for intervals and bands.
N_BOOT = 2000
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


def bootstrap_ci(
    values: ArrayLike,
    statistic: Callable[..., Floats] = np.mean,
    *,
    level: float = 0.95,
    n_boot: int = N_BOOT,
    min_n: int = MIN_SEEDS,
    rng: np.random.Generator | int | None = None,
) -> tuple[float, float]:
    """Percentile-bootstrap interval for ``statistic`` over the finite ``values``.

    ``statistic`` must accept ``axis=1`` (``np.mean``, ``np.median``). Returns
    ``(nan, nan)`` with fewer than ``min_n`` values: too few seeds for an interval.
    """
    x = finite(values)
    if len(x) < max(min_n, 1):
        return (math.nan, math.nan)
    gen = _rng(rng)
    samples = x[gen.integers(0, len(x), size=(n_boot, len(x)))]
    stats = np.asarray(statistic(samples, axis=1), dtype=float)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return (float(lo), float(hi))


def median_band(
    matrix: ArrayLike,
    *,
    level: float = 0.95,
    n_boot: int = 1000,
    min_n: int = MIN_SEEDS,
    rng: np.random.Generator | int | None = None,
) -> tuple[Floats, Floats, Floats]:
    """Median over seeds (rows) at each point (column), with a bootstrap band.

    One resample of seeds is shared by every point, so the band is that of the
    median curve, not of independent points. With fewer than ``min_n`` rows the
    band is NaN (not drawn).
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2:
        raise ValueError("median_band expects a seeds x points matrix")
    median = np.median(m, axis=0)
    n = m.shape[0]
    if n < max(min_n, 1):
        nan = np.full(m.shape[1], np.nan)
        return median, nan, nan.copy()
    gen = _rng(rng)
    idx = gen.integers(0, n, size=(n_boot, n))
    boots = np.median(m[idx], axis=1)  # n_boot x points
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha], axis=0)
    return median, lo, hi


@dataclass(frozen=True)
class PairedTest:
    """The outcome of a paired comparison; ``p_value`` is NaN when unavailable."""

    n: int
    mean_diff: float
    p_value: float
    exact: bool
    #: The smallest two-sided p-value this many pairs can give (2/2ⁿ when exact).
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
    return PairedTest(n, mean_diff, p, exact, 2.0 / 2**n if exact else 1.0 / len(signs))


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

    Times are positive, a miss is ``inf`` (or NaN). A problem that no optimizer
    solved has every ratio ``inf``: it counts as a miss for all of them.
    """
    t = times.astype(float).where(times.astype(float) > 0).fillna(np.inf)
    best = t.min(axis=1)
    ratios = t.div(best.where(np.isfinite(best)), axis=0)
    return ratios.fillna(np.inf)


def performance_profile(
    times: pd.DataFrame, taus: ArrayLike | None = None
) -> pd.DataFrame:
    """ρ_s(τ): fraction of problems whose ratio to the best is at most τ.

    Returns a frame indexed by τ (default 1 to :data:`TAU_MAX` in 301 steps) with
    one column per optimizer.
    """
    grid = np.linspace(1.0, TAU_MAX, 301) if taus is None else np.asarray(taus, dtype=float)
    ratios = performance_ratios(times)
    r = ratios.to_numpy(dtype=float)  # problems x optimizers
    if len(r) == 0:
        values = np.full((len(grid), r.shape[1]), np.nan)
    else:
        values = np.stack([(r <= tau).mean(axis=0) for tau in grid]) if len(grid) else \
            np.empty((0, r.shape[1]))
    return pd.DataFrame(values, index=pd.Index(grid, name="tau"), columns=ratios.columns)


def profile_score(times: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.Series:
    """Area under ρ_s(τ) for τ in [1, τ_max], divided by (τ_max − 1): a score in [0, 1].

    ρ is a step function, so the area is exact: each problem contributes
    ``(τ_max − max(r, 1))⁺`` for its ratio ``r``.
    """
    ratios = performance_ratios(times)
    n = len(ratios)
    if n == 0:
        return pd.Series(dtype=float)
    width = tau_max - 1.0
    contrib = (tau_max - ratios.clip(lower=1.0)).clip(lower=0.0)
    return (contrib.sum(axis=0) / (n * width)).astype(float)


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
