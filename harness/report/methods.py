"""The report's closing sections: the cells that did not finish ok, and how the numbers
were computed (written from the constants and names the statistics compute with, so the text
cannot drift from the numbers: ``tests/test_methods_text.py`` reads both)."""

from __future__ import annotations

import pandas as pd

from harness.outcome import Status
from harness.report import html as H
from harness.report import stats, tables
from harness.report.sweep import Sweep


# -- failures and methods ---------------------------------------------------------------------
def failures_section(failures: pd.DataFrame,
                      figure_errors: list[dict[str, str]]) -> H.Section:
    sec = H.Section("failures", "Cells not ok and figure errors")  # pruned: not a failure
    if failures.empty:
        sec.blocks.append(H.paragraph("Every cell finished ok."))
    elif (failures.get("status", pd.Series(dtype=object)) == Status.PRUNED).all():
        sec.blocks.append(H.paragraph(
            f"Every cell finished ok but {len(failures)} tuning trial(s) the tuner's pruner "
            "stopped early: a result rather than a failure (their cost is in the tuning "
            "section)."))
        sec.blocks.append(H.table(failures))
    else:
        status = failures["status"] if "status" in failures else pd.Series(dtype=object)
        skipped = int((status == Status.SKIPPED).sum())
        pruned = int((status == Status.PRUNED).sum())
        ran = len(failures) - skipped - pruned
        parts = []
        if pruned:
            parts.append(f"{pruned} tuning trial(s) were pruned: stopped early by the "
                         "tuner's pruner, a result rather than a failure (their cost is in "
                         "the tuning section, their curves are kept).")
        if ran:
            parts.append(f"{ran} cell(s) did not finish ok. They count as misses for "
                         "time-to-target and are left out of the curves and the ranking "
                         "statistics.")
        if skipped:
            parts.append(f"{skipped} cell(s) were skipped (a device this machine lacks): they "
                         "never ran and appear nowhere else in this report.")
        sec.blocks.append(H.paragraph(" ".join(parts)))
        sec.blocks.append(H.table(failures))
    if figure_errors:
        sec.blocks.append("<h3>Figure errors</h3>")
        sec.blocks.append(H.table(pd.DataFrame(figure_errors)))
    return sec


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def interval_text() -> str:
    """The intervals of a mean: which, when, at what level."""
    level = _pct(stats.LEVEL)
    return (
        f"Intervals of a mean ({level}), chosen to respect the metric's range and named in "
        f"each ranking row: when every seed's value is positive (a loss, an accuracy, a "
        f"time), the {stats.INTERVAL_LOG_T} interval: Student's t interval of the mean of the "
        "logarithms, back-transformed, exp(mean(log x) ± t(n−1)·s_log/√n), an interval for the "
        "geometric mean that never goes below zero; when a value may be negative (a return), "
        f"{stats.INTERVAL_T}, mean ± t(n−1)·s/√n; non-negative values with a zero among them, "
        f"{stats.INTERVAL_T_TRUNCATED} (the true mean lies in the range, so the level holds). "
        f"Unavailable with fewer than {stats.MIN_SEEDS} seeds. (A percentile bootstrap is too "
        "narrow for a handful of seeds: with 3 it is their range, which holds the mean about "
        "76% of the time.)")


def band_text() -> str:
    return (
        "Curves: each seed's curve is linearly interpolated onto a common axis spanning the "
        "range every seed covers; the line is the median over seeds and the band, at each "
        "point, the distribution-free interval of the median from the seeds' order "
        f"statistics: {_pct(stats.LEVEL)} or more from {_seeds_for_level()} seeds, and below "
        "that the seeds' range, which holds the median with confidence 1 − 2/2ⁿ "
        f"({_pct(stats.median_level(3))} for 3 seeds, {_pct(stats.median_level(4))} for 4, "
        f"{_pct(round(stats.median_level(5), 3))} for 5). A log scale is used when the values "
        "span two decades or more.")


def _seeds_for_level() -> int:
    n = 1
    while stats.median_level(n) < stats.LEVEL:
        n += 1
    return n


def test_text() -> str:
    alpha = stats.ALPHA
    return (
        f"Paired test: two-sided {stats.PAIRED_TEST} of the mean per-seed difference (exact "
        f"over all 2ⁿ sign patterns up to {stats.EXACT_MAX_PAIRS} seeds, above that "
        f"{stats.N_PERMUTATIONS:,} random sign patterns drawn with the fixed seed "
        f"{stats.DEFAULT_SEED}). It assumes no distribution; its smallest possible p-value is "
        "2/2ⁿ (each pair whose difference is exactly zero doubles it): 0.25 with 3 seeds, "
        f"0.0625 with 5, so a claim at the {alpha:g} level needs at least "
        f"{stats.seeds_needed(alpha)} seeds. {stats.CORRECTION}'s correction adjusts the "
        "p-values of one problem's m comparisons for their number, and none of them can then "
        "go below m times the smallest floor: 5 comparisons need "
        f"{stats.seeds_needed(alpha, 5)} seeds. Where the floor (or the floor after "
        f"{stats.CORRECTION}) is above {alpha:g}, no outcome could separate the two arms: the "
        "table says \"too few seeds to separate these arms\" with the floor and the seeds "
        "needed, instead of a p-value that would read as evidence of no difference.")


def profile_text(cost: str) -> str:
    tau = f"{stats.TAU_MAX:g}"
    return (
        f"Performance profile (AlgoPerf), here on {tables.COSTS[cost].label}: per problem, each "
        "optimizer's median cost to target over seeds, a miss counting as infinite; ρ(τ) is "
        "the fraction of problems within τ of the best; the score is the exact area under ρ "
        f"for τ in [1, {tau}] divided by {stats.TAU_MAX - 1:g}. An optimizer is scored over "
        "the problems it was run on, a problem it was not run on is not a miss (the score "
        "table gives the count).")


COST_TEXT = (
    "Cost to target: the steps, samples (in the problem's unit), FLOPs and training "
    "seconds (evaluation excluded) until the problem's target metric first crossed its "
    "threshold at an evaluation. FLOPs to target is steps to target times the FLOPs of "
    "one training step, forward and backward, counted once per cell by "
    "torch.utils.flop_counter.FlopCounterMode on a copy of the model and optimizer (it "
    "counts matrix products, convolutions and attention).")

SWEEP_TEXT = (
    "Sweeps and tuning: an optimizer's configurations on a problem (a swept or tuned "
    "hyperparameter) are one group. Each configuration's value is the mean of the "
    "problem's validation metric over its seeds (the training loss where the problem has "
    "no validation split), in the metric's recorded direction; the best is selected "
    "(in a tuning run, by the tuner) and only it is ranked and drawn, under the "
    "optimizer's name. The test metric never selects. A selection at the smallest or "
    "largest value tried is flagged: a better value may lie beyond.")


def methods_section(cost: str, found: Sweep | None = None) -> H.Section:
    """Written from the constants and names the code computes with (:mod:`harness.report.
    stats`, :mod:`harness.report.tables`), so that the text cannot drift from the numbers:
    ``tests/test_methods_text.py`` reads both."""
    sec = H.Section("methods", "How the numbers were computed")
    sec.blocks.append(H.bullet_list([
        *([SWEEP_TEXT] if found is not None else []),
        "Seeds are the replicates. An optimizer given the same seed on the same problem gets "
        "the same initialisation and data order, so comparisons pair seeds.",
        interval_text(), band_text(), test_text(), profile_text(cost), COST_TEXT,
    ]))
    return sec
