"""Tables as the page shows them: the numbers of :mod:`harness.report.tables` in words."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.report import html as H
from harness.report import stats


def verdict(row: Any, comparisons: int) -> str:
    """The paired test of one ranking row against the best, as the page says it: the
    p-value (Holm-adjusted in brackets) and the smallest possible one, or "too few seeds to
    separate these arms" when no outcome of the test could reach :data:`stats.ALPHA`
    with the pairs there are (before or after Holm's correction over ``comparisons``)."""
    pairs = int(row["pairs"])
    if not math.isfinite(row["p_value"]):
        return f"unavailable ({pairs} pairs < {stats.MIN_SEEDS})"
    floor, holm_floor = float(row["min_p"]), float(row["min_p_holm"])
    alpha = f"{stats.ALPHA:g}"
    if floor > stats.ALPHA:
        needs = stats.seeds_needed(stats.ALPHA, comparisons)
        family = f" for {comparisons} comparisons after Holm" if comparisons > 1 else ""
        return (f"too few seeds to separate these arms: with {pairs} pairs p ≥ {floor:.3g} "
                f"> {alpha} (needs {needs} seeds{family})")
    if math.isfinite(holm_floor) and holm_floor > stats.ALPHA:
        return (f"too few seeds to separate these arms after Holm's correction for "
                f"{comparisons} comparisons: p ≥ {holm_floor:.3g} > {alpha} (needs "
                f"{stats.seeds_needed(stats.ALPHA, comparisons)} seeds; unadjusted "
                f"p {row['p_value']:.3g})")
    return f"{row['p_value']:.3g} ({row['p_holm']:.3g}); min {floor:.2g}"


def ranking_display(frame: pd.DataFrame) -> pd.DataFrame:
    """One problem's ranking (:func:`harness.report.tables.ranking` rows) for the page."""
    out = []
    comparisons = int(pd.to_numeric(frame["p_value"], errors="coerce").notna().sum())
    for _, r in frame.iterrows():
        n_ok, n = int(r["seeds_ok"]), int(r["seeds"])
        if math.isfinite(r["ci_low"]):
            ci = (f"[{H.fmt_number(r['ci_low'])}, {H.fmt_number(r['ci_high'])}] "
                  f"({r['ci_method']})")
        else:
            ci = f"unavailable (n={n_ok} < {stats.MIN_SEEDS})"
        if r["is_best"]:
            diff, p = "best", "–"
        else:
            diff = H.fmt_number(r["diff_vs_best"]) if int(r["pairs"]) else "–"
            p = verdict(r, comparisons)
        out.append({
            "rank": "–" if not math.isfinite(r["rank"]) else str(int(r["rank"])),
            "optimizer": r["arm"], "seeds ok with a value": f"{n_ok}/{n}"
            + (f" ({int(r['seeds_failed'])} failed)" if int(r["seeds_failed"]) else ""),
            "mean": H.fmt_number(r["mean"]), "median": H.fmt_number(r["median"]),
            f"{stats.LEVEL:.0%} interval of the mean": ci, "Δ mean vs best (paired)": diff,
            "p (Holm); smallest possible": p,
        })
    return pd.DataFrame(out)
