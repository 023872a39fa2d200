"""The report's tables, as pandas frames (also written as CSV beside the report).

Every table is computed from the summary of a :class:`ReportRun`; the unit of
comparison is the ``problem`` label (a model with its varying parameters, and the
device when a run has several) and the ``arm`` label (an optimizer with its varying
hyperparameters). Seeds are the replicates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.outcome import Status
from harness.report import stats
from harness.report.model import ReportRun
from harness.results.schema import NOISY_DISPERSION

UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class CostAxis:
    """A cost to reach the target, as ``harness report --cost`` names it."""

    #: Its column in :func:`time_to_target`.
    column: str
    #: How it reads in a sentence ("steps to target").
    label: str
    #: Whether the same cells give the same value on every run (see :func:`reproducible`).
    counted: bool


#: The cost axes of the performance profile, the ranking and the cost-to-target figure.
COSTS: dict[str, CostAxis] = {
    "steps": CostAxis("steps", "steps to target", True),
    "samples": CostAxis("samples", "samples to target", True),
    "flops": CostAxis("flops", "FLOPs to target", True),
    "time": CostAxis("time_s", "training seconds to target", False),
}
DEFAULT_COST = "steps"


def reproducible(run: ReportRun) -> dict[str, str]:
    """For each cost axis, whether it is reproducible for this run, and why (one phrase)."""
    devices = {str(d) for d in run.summary["device"]} if len(run.summary) else set()
    accelerated = sorted(d for d in devices if d != "cpu")
    out: dict[str, str] = {}
    for name, axis in COSTS.items():
        if not axis.counted:
            out[name] = ("not reproducible: wall-clock training time depends on the machine "
                         "and on whatever else runs on it")
        elif not accelerated:
            out[name] = ("reproducible: counted, and CPU curves are bit-identical for the "
                         "same seed")
        else:
            out[name] = (f"reproducible on the CPU cells; on {', '.join(accelerated)} only as "
                         "far as the kernels are deterministic")
    return out


def _ok(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["status"] == Status.OK]


def ranking(run: ReportRun) -> pd.DataFrame:
    """Per problem and arm: the final metric's mean, median and interval (its range's,
    :func:`stats.range_interval`, named in ``ci_method``) of the
    mean over seeds, and a paired test against the problem's best arm.

    ``seeds_ok`` counts the ``ok`` seeds with a finite final value, ``seeds`` all
    seeds that ran (cells ``skipped`` for a device this machine lacks never ran and are
    left out), ``seeds_failed`` those that diverged, failed or timed out. Arms rank by
    their mean over the ``ok`` seeds, but an arm with a failed seed ranks after every arm
    without one: a mean over the seeds that survived would flatter it. The best arm
    (rank 1) is the one each other arm is paired
    with it seed by seed (seeds present and finite in both); with fewer than
    :data:`stats.MIN_SEEDS` seeds or pairs the interval and the test are NaN.
    ``min_p`` is the smallest p-value the test can give these pairs, ``min_p_holm`` the
    smallest Holm-adjusted one over the problem's comparisons, and ``separable`` whether
    that is at most :data:`stats.ALPHA` (else no outcome could separate the two arms).
    """
    rows: list[dict[str, object]] = []
    summary = run.summary[run.summary["status"] != Status.SKIPPED]  # never ran: nothing to rank
    for problem, group in summary.groupby("problem", sort=False):
        metric, mode = run.final_metric(str(problem))
        values: dict[str, pd.Series] = {}
        for arm, cells in group.groupby("arm", sort=False):
            ok = _ok(cells)
            col = ok[metric] if metric in ok.columns else pd.Series(dtype=float)
            values[str(arm)] = pd.Series(pd.to_numeric(col, errors="coerce").to_numpy(),
                                         index=ok["seed"].to_numpy(), dtype=float)
        means = {a: float(v.mean()) if v.notna().any() else math.nan for a, v in values.items()}
        failed = {str(a): int((~cells["status"].isin((Status.OK, Status.SKIPPED))).sum())
                  for a, cells in group.groupby("arm", sort=False)}
        ranked = sorted((a for a in means if math.isfinite(means[a])),
                        key=lambda a: (failed[a] > 0, means[a] if mode == "min" else -means[a]))
        best = ranked[0] if ranked else None
        problem_rows: list[dict[str, object]] = []
        for arm, v in values.items():
            seeds_total = int((group["arm"] == arm).sum())
            x = stats.finite(v.to_numpy())
            lo, hi, ci_method = stats.range_interval(x)
            row: dict[str, object] = {
                "problem": problem, "arm": arm, "metric": metric, "better": mode,
                "rank": ranked.index(arm) + 1 if arm in ranked else math.nan,
                "seeds_ok": len(x), "seeds": seeds_total, "seeds_failed": failed[arm],
                "mean": float(x.mean()) if len(x) else math.nan,
                "median": float(np.median(x)) if len(x) else math.nan,
                "ci_low": lo, "ci_high": hi, "ci_method": ci_method,
                "diff_vs_best": math.nan, "pairs": 0, "p_value": math.nan,
                "min_p": math.nan, "is_best": arm == best,
            }
            if best is not None and arm != best:
                a, b = values[best].align(v, join="inner")
                test = stats.paired_permutation_test(a.to_numpy(), b.to_numpy())
                row.update(diff_vs_best=test.mean_diff, pairs=test.n, p_value=test.p_value,
                           min_p=test.min_p)
            problem_rows.append(row)
        adjusted = stats.holm([float(r["p_value"]) for r in problem_rows])  # type: ignore[arg-type]
        floors = stats.holm_floors([float(r["min_p"]) for r in problem_rows])  # type: ignore[arg-type]
        for row, p, floor in zip(problem_rows, adjusted, floors, strict=True):
            row["p_holm"] = p
            row["min_p_holm"] = floor
            row["separable"] = bool(math.isfinite(floor) and floor <= stats.ALPHA)
        problem_rows.sort(key=lambda r: (not math.isfinite(float(r["rank"])),  # type: ignore[arg-type]
                                         r["rank"]))
        rows.extend(problem_rows)
    columns = ["problem", "arm", "metric", "better", "rank", "seeds_ok", "seeds",
               "seeds_failed", "mean", "median", "ci_low", "ci_high", "ci_method",
               "diff_vs_best", "pairs", "p_value", "p_holm", "min_p", "min_p_holm",
               "separable", "is_best"]
    return pd.DataFrame(rows, columns=columns)


def time_to_target(run: ReportRun) -> pd.DataFrame:
    """Per cell: the cost of reaching the target on every axis of :data:`COSTS` (training
    seconds, steps, samples, FLOPs), or ``reached = False``.

    ``flops`` is NaN for a cell that reached the target but whose step could not be
    counted (or was written before FLOPs were). Cells that are not ``ok`` or never reached
    the target stay in the table with every cost NaN, so figures can show them as misses
    rather than drop them. Cells ``skipped`` (a device this machine lacks) never ran:
    they are left out.
    """
    s = run.summary
    s = s[s["status"] != Status.SKIPPED]
    cols = ["problem", "arm", "device", "seed", "status", "reached", "time_s", "steps",
            "samples", "flops"]
    if s.empty:
        return pd.DataFrame(columns=cols)

    def column(name: str) -> pd.Series:
        return pd.to_numeric(s[name], errors="coerce") if name in s.columns \
            else pd.Series(math.nan, index=s.index)

    t = column("time_to_target_s")
    reached = (s["status"] == Status.OK) & t.notna()
    return pd.DataFrame({
        "problem": s["problem"], "arm": s["arm"], "device": s["device"], "seed": s["seed"],
        "status": s["status"], "reached": reached, "time_s": t.where(reached),
        "steps": column("steps_to_target").where(reached),
        "samples": column("samples_to_target").where(reached),
        "flops": column("flops_to_target").where(reached),
    })[cols].reset_index(drop=True)


def profile_times(ttt: pd.DataFrame, cost: str = "time") -> pd.DataFrame:
    """Problems x arms: the median cost to target (``cost``, a key of :data:`COSTS`) over
    seeds, a miss counting as ``inf``.

    A median with misses as infinite is infinite once half the seeds miss: an
    optimizer must reach the target on most seeds to count as reaching it. NaN: the
    arm was not run on that problem.
    """
    if ttt.empty:
        return pd.DataFrame()
    times = ttt.assign(
        t=ttt[COSTS[cost].column].where(ttt["reached"], np.inf).astype(float))
    table = times.pivot_table(index="problem", columns="arm", values="t", aggfunc="median",
                              sort=False, dropna=False)
    return table.astype(float)


def cost_to_target(ttt: pd.DataFrame, cost: str = DEFAULT_COST) -> pd.DataFrame:
    """Per problem and arm: the median cost to target (``cost``, a key of :data:`COSTS`)
    over the seeds that reached it (NaN when none did), and how many of how many seeds
    reached it (a cell that did not finish ``ok`` is a miss)."""
    cols = ["problem", "arm", "cost", "median", "reached", "seeds"]
    if ttt.empty:
        return pd.DataFrame(columns=cols)
    value = pd.to_numeric(ttt[COSTS[cost].column], errors="coerce").where(ttt["reached"])
    frame = ttt.assign(value=value, hit=ttt["reached"].astype(bool))
    grouped = frame.groupby(["problem", "arm"], sort=False)
    out = grouped.agg(median=("value", "median"), reached=("hit", "sum"),
                      seeds=("hit", "size")).reset_index()
    out.insert(2, "cost", cost)
    return out.astype({"reached": int, "seeds": int})[cols]


def profile_scores(times: pd.DataFrame) -> pd.DataFrame:
    """The AlgoPerf-style score per arm, with the number of problems it reached the
    target on and the number it was run on (its score is over those)."""
    if times.empty:
        return pd.DataFrame(columns=["arm", "score", "problems_reached", "problems"])
    score = stats.profile_score(times)
    reached = np.isfinite(times).sum(axis=0)
    ran = times.notna().sum(axis=0)
    frame = pd.DataFrame({"arm": score.index, "score": score.to_numpy(),
                          "problems_reached": reached.reindex(score.index).to_numpy(),
                          "problems": ran.reindex(score.index).to_numpy()})
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def throughput(run: ReportRun) -> pd.DataFrame:
    """Per problem, arm and device: samples/s and peak memory over the ``ok`` seeds, the
    largest throughput dispersion of a seed and how many seeds are noisy (dispersion over
    :data:`~harness.results.schema.NOISY_DISPERSION`)."""
    s = _ok(run.summary)
    cols = ["problem", "arm", "device", "device_name", "unit", "seeds", "samples_per_s_median",
            "samples_per_s_min", "samples_per_s_max", "step_time_ms_median",
            "peak_mem_mb_median", "peak_mem_mb_max", "dispersion_max", "noisy_seeds",
            "repeats", "repeat_dispersion_max"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    names = run.manifest.get("devices") or {}
    rows = []
    for (problem, arm, device), g in s.groupby(["variant", "arm", "device"], sort=False):
        rate = pd.to_numeric(g["samples_per_s"], errors="coerce")
        mem = pd.to_numeric(g["peak_mem_mb"], errors="coerce")
        spread = pd.to_numeric(g.get("throughput_dispersion", pd.Series(math.nan, g.index)),
                               errors="coerce")
        unit = g["sample_unit"].dropna().iloc[0] if "sample_unit" in g and \
            g["sample_unit"].notna().any() else "samples"
        rows.append({
            "problem": problem, "arm": arm, "device": device,
            "device_name": names.get(device, ""), "unit": unit, "seeds": len(g),
            "samples_per_s_median": rate.median(), "samples_per_s_min": rate.min(),
            "samples_per_s_max": rate.max(),
            "step_time_ms_median": pd.to_numeric(g["step_time_ms"], errors="coerce").median(),
            "peak_mem_mb_median": mem.median(), "peak_mem_mb_max": mem.max(),
            "dispersion_max": spread.max(),
            "noisy_seeds": int((spread > NOISY_DISPERSION).sum()),
            # --repeats: the timing runs in fresh workers, and their largest spread
            "repeats": int(_column(g, "throughput_repeats").fillna(0).sum()),
            "repeat_dispersion_max": _column(g, "throughput_repeat_dispersion").max(),
        })
    return pd.DataFrame(rows, columns=cols)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, NaN where the frame lacks it."""
    return pd.to_numeric(frame.get(name, pd.Series(math.nan, frame.index)), errors="coerce")


def failures(run: ReportRun) -> pd.DataFrame:
    """Every cell whose status is not ``ok``, with its error."""
    s = run.summary
    cols = ["model", "params", "optimizer", "hyperparameters", "device", "seed", "status",
            "error"]
    if s.empty:
        return pd.DataFrame(columns=cols)
    bad = s[s["status"] != Status.OK]
    return bad[[c for c in cols if c in bad.columns]].reset_index(drop=True)
