"""The report's closing sections: the cells that did not finish ok, and how the numbers
were computed."""

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


def methods_section(cost: str, found: Sweep | None = None) -> H.Section:
    sec = H.Section("methods", "How the numbers were computed")
    sweeps = [] if found is None else [
        "Sweeps and tuning: an optimizer's configurations on a problem (a swept or tuned "
        "hyperparameter) are one group. Each configuration's value is the mean of the "
        "problem's validation metric over its seeds (the training loss where the problem has "
        "no validation split), in the metric's recorded direction; the best is selected "
        "(in a tuning run, by the tuner) and only it is ranked and drawn, under the "
        "optimizer's name. The test metric never selects. A selection at the smallest or "
        "largest value tried is flagged: a better value may lie beyond."]
    sec.blocks.append(H.bullet_list([*sweeps,
        "Seeds are the replicates. An optimizer given the same seed on the same problem gets "
        "the same initialisation and data order, so comparisons pair seeds.",
        "Intervals of a mean: Student's t, mean ± t(n−1)·s/√n; unavailable with fewer than "
        f"{stats.MIN_SEEDS} seeds. (A percentile bootstrap is too narrow for a handful of "
        "seeds: with 3 it is their range, which holds the mean about 76% of the time.)",
        "Curves: each seed's curve is linearly interpolated onto a common axis spanning the "
        "range every seed covers; the line is the median over seeds and the band, at each "
        "point, the distribution-free interval of the median from the seeds' order "
        "statistics: 95% or more from 6 seeds, and below that the seeds' range, which holds "
        "the median with confidence 1 − 2/2ⁿ (75% for 3 seeds, 87.5% for 4, 93.8% for 5). "
        "A log scale is used when the values span two decades or more.",
        "Paired test: two-sided sign-flip permutation test of the mean per-seed difference "
        f"(exact over all 2ⁿ sign patterns up to {stats.EXACT_MAX_PAIRS} seeds). It assumes "
        "no distribution; its smallest possible p-value is 2/2ⁿ (each pair whose difference "
        "is exactly zero doubles it): 0.25 with 3 seeds, 0.0625 with 5, so a claim at the "
        f"{stats.ALPHA:g} level needs at least {stats.seeds_needed(stats.ALPHA)} seeds. "
        "Holm's correction adjusts the p-values of one problem's m comparisons for their "
        "number, and none of them can then go below m times the smallest floor: 5 "
        f"comparisons need {stats.seeds_needed(stats.ALPHA, 5)} seeds. Where the floor (or "
        f"the floor after Holm) is above {stats.ALPHA:g}, no outcome could separate the two "
        "arms: the table says \"too few seeds to separate these arms\" with the floor and the "
        "seeds needed, instead of a p-value that would read as evidence of no difference.",
        f"Performance profile (AlgoPerf), here on {tables.COSTS[cost].label}: per problem, each "
        "optimizer's median cost to target over seeds, a miss counting as infinite; ρ(τ) is "
        "the fraction of problems within τ of the best; the score is the exact area under ρ "
        "for τ in [1, 4] divided by 3. An optimizer is scored over the problems it was run "
        "on, a problem it was not run on is not a miss (the score table gives the count).",
        "Cost to target: the steps, samples (in the problem's unit), FLOPs and training "
        "seconds (evaluation excluded) until the problem's target metric first crossed its "
        "threshold at an evaluation. FLOPs to target is steps to target times the FLOPs of "
        "one training step, forward and backward, counted once per cell by "
        "torch.utils.flop_counter.FlopCounterMode on a copy of the model and optimizer (it "
        "counts matrix products, convolutions and attention).",
    ]))
    return sec
