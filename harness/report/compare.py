"""``harness compare BASE NEW``: per cell, did throughput or the final metric regress?

Cells are matched by their content key without the seed and without the code
versions (the point is to compare versions), and aggregated over seeds: the median
of the seeds that finished ``ok`` on each side.

* Throughput: :mod:`harness.report.gate` decides, with a test on the runs (seeds and
  ``--repeats``) or the steady windows, a minimum effect, and the machine's load on both
  sides; it says ``regressed``, ``improved``, ``unchanged`` or ``inconclusive`` (with the
  reason), and an inconclusive group never fails the gate.

A metric's change counts only when it is worse by more than

    max(floor × |base median|, k × spread)

* Final metric (the problem's target metric, else the final loss; better on the side its
  ``metric_directions`` entry says): seeds pair up
  (the same seed is the same initialisation and data order), so with two or more
  shared seeds the change is the median per-seed difference and ``spread`` the
  standard deviation of those differences; otherwise as for throughput, and with
  a single seed only the floor applies.

A group also regresses when a seed that finished ``ok`` in the base did not in the
new run (without shared seeds: when the fraction of ``ok`` seeds fell). A cell the new run
lost fails the gate too, unless ``--allow-missing``: a cell of the base or of the new run's
own grid without a record in the new run, or one that ended ``error`` there. Two runs with
no cell group in common cannot be compared: that is a usage error naming, for each new
group, the closest base group and exactly which keys differ (:mod:`harness.report.matching`);
new groups listed as "only in new" are named with theirs too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.outcome import Status
from harness.report.gate import (
    DEFAULT_ALPHA,
    DEFAULT_LOAD_TOLERANCE,
    GateSettings,
    Speed,
    judge,
    over_the_family,
)
from harness.report.matching import explain, group_keys
from harness.report.model import ReportRun, metric_mode, steady_windows
from harness.target import better_side, parse_directions

DEFAULT_K = 2.0
DEFAULT_THROUGHPUT_FLOOR = 0.10
DEFAULT_METRIC_FLOOR = 0.05


@dataclass(frozen=True)
class Thresholds:
    """How far a median may move before it counts: see the module docstring."""

    k: float = DEFAULT_K
    #: The throughput gate's minimum effect (:mod:`harness.report.gate`).
    throughput_floor: float = DEFAULT_THROUGHPUT_FLOOR
    metric_floor: float = DEFAULT_METRIC_FLOOR
    #: The throughput test's significance level.
    alpha: float = DEFAULT_ALPHA
    #: How much less CPU time other processes may leave free before the load "differed".
    load_tolerance: float = DEFAULT_LOAD_TOLERANCE
    #: The metric to judge (``--metric``); None: each problem's target metric, else the
    #: final training loss.
    metric: str | None = None


@dataclass
class Comparison:
    table: pd.DataFrame
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    #: Cells without a record in the new run: the base's, and those of the new run's own
    #: grid (its manifest), each named with its seed.
    missing: list[str] = field(default_factory=list)
    #: Cells of the new run that ended ``error`` (a crash, not a result), with the error.
    errors: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return bool(len(self.table)) and bool(self.table["regressed"].any())

    @property
    def inconclusive(self) -> list[str]:
        """Each group whose throughput verdict is inconclusive, with the reason."""
        if self.table.empty:
            return []
        rows = self.table[self.table["throughput_verdict"] == "inconclusive"]
        return [f"{c}: {r}" for c, r in zip(rows["cell"], rows["throughput_reason"],
                                             strict=True)]

    @property
    def lost(self) -> bool:
        """Whether the new run lost cells: missing ones, or ones that ended ``error``."""
        return bool(self.missing or self.errors)

    def failed(self, allow_missing: bool = False) -> bool:
        """The gate's verdict: a regression, or (unless allowed) a lost cell."""
        return self.regressed or (self.lost and not allow_missing)


def match_key(cell: dict[str, Any]) -> str:
    """A cell's content key without its seed and code versions."""
    d = {k: v for k, v in cell.items() if k not in ("seed", "versions")}
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


@dataclass
class _Side:
    seeds: int = 0
    ok: int = 0
    speed: Speed = field(default_factory=Speed)
    #: seed -> final metric, for the paired comparison.
    metric: dict[int, float] = field(default_factory=dict)
    #: seed -> status.
    status: dict[int, str] = field(default_factory=dict)


def _gather(run: ReportRun, metric_of: dict[str, tuple[str, str]]
            ) -> tuple[dict[str, _Side], dict[str, str]]:
    by_id = run.summary.set_index("cell_id")
    sides: dict[str, _Side] = {}
    labels: dict[str, str] = {}
    for rec in run.records:
        key = match_key(rec["cell"])
        row = by_id.loc[rec["cell_id"]]
        labels.setdefault(key, f"{row['variant']} | {row['arm']} | {row['device']}")
        side = sides.setdefault(key, _Side())
        side.seeds += 1
        side.status[int(rec["cell"]["seed"])] = str(rec.get("status"))
        if rec.get("status") != Status.OK:
            continue
        side.ok += 1
        metric = metric_of[key][0] if key in metric_of else \
            run.final_metric(str(row["problem"]))[0]
        side.speed.add(row, steady_windows(rec))
        side.metric[int(rec["cell"]["seed"])] = _num(row.get(metric))
    return sides, labels


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if len(x) < 2 or len(y) < 2:
        return math.nan
    var = ((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2)
    return float(math.sqrt(var))


def _judge(base: Sequence[float], new: Sequence[float], better: str, floor: float, k: float,
           fallback_sd: float = math.nan) -> dict[str, Any]:
    b, n = _median(base), _median(new)
    sd = _pooled_sd(base, new)
    noise = "seeds"
    if not math.isfinite(sd):
        sd, noise = fallback_sd, "windows" if math.isfinite(fallback_sd) else "floor only"
    threshold = max(floor * abs(b), k * sd if math.isfinite(sd) else 0.0)
    if not (math.isfinite(b) and math.isfinite(n)):
        relative = threshold / abs(b) if math.isfinite(b) and b else math.nan
        return {"base": b, "new": n, "change": math.nan, "threshold": relative,
                "noise": noise, "verdict": "n/a", "regressed": False}
    worse = (b - n) if better == "max" else (n - b)
    verdict = _verdict(worse, threshold)
    return {"base": b, "new": n, "change": (n - b) / abs(b) if b else math.nan,
            "threshold": threshold / abs(b) if b else math.nan, "noise": noise,
            "verdict": verdict, "regressed": verdict == "regressed"}


def _verdict(worse: float, threshold: float) -> str:
    return "regressed" if worse > threshold else "improved" if -worse > threshold \
        else "unchanged"


def _judge_paired(base: dict[int, float], new: dict[int, float], better: str, floor: float,
                  k: float) -> dict[str, Any]:
    """The final metric: seed by seed when the runs share two or more seeds.

    The same seed means the same initialisation and data order, so the per-seed
    difference removes the seed's own luck; its spread is the noise. ``base`` and
    ``new`` are then the medians over the shared seeds, the ones the change is over.
    Without shared seeds this falls back to the unpaired comparison of :func:`_judge`.
    """
    common = sorted(s for s in base if s in new
                    and math.isfinite(base[s]) and math.isfinite(new[s]))
    if len(common) < 2:
        return _judge(list(base.values()), list(new.values()), better, floor, k)
    diffs = np.array([new[s] - base[s] for s in common])
    b, n = _median([base[s] for s in common]), _median([new[s] for s in common])
    ref = b
    sd = float(diffs.std(ddof=1))
    threshold = max(floor * abs(ref), k * sd)
    shift = float(np.median(diffs))
    worse = -shift if better == "max" else shift
    verdict = _verdict(worse, threshold)
    return {"base": b, "new": n, "change": shift / abs(ref) if ref else math.nan,
            "threshold": threshold / abs(ref) if ref else math.nan, "noise": "paired seeds",
            "verdict": verdict, "regressed": verdict == "regressed"}


def _status_regressed(base: _Side, new: _Side) -> bool:
    """A seed ok in the base is not ok in the new run; without shared seeds, the
    fraction of ok seeds fell."""
    shared = [s for s in base.status if s in new.status]
    if shared:
        return any(base.status[s] == Status.OK and new.status[s] != Status.OK for s in shared)
    return new.ok * base.seeds < base.ok * new.seeds


def _median(values: Sequence[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else math.nan


def compare_runs(base_dir: Path, new_dir: Path,
                 thresholds: Thresholds | None = None) -> Comparison:
    """Match the two runs' cells and judge each matched group.

    :raises harness.errors.UsageError: either directory holds no harness results.
    """
    th = thresholds or Thresholds()
    base, new = ReportRun.load(base_dir), ReportRun.load(new_dir)
    metric_of = _metrics(base, th.metric)
    b_sides, b_labels = _gather(base, metric_of)
    n_sides, n_labels = _gather(new, metric_of)
    gate = GateSettings(th.throughput_floor, th.alpha, th.load_tolerance)
    cpus = (_cpu(base), _cpu(new))
    rows = []
    keys = [k for k in b_sides if k in n_sides]
    speeds = over_the_family([judge(b_sides[k].speed, n_sides[k].speed, gate, cpus)
                              for k in keys], gate.alpha)
    for key, t in zip(keys, speeds, strict=True):
        b, n = b_sides[key], n_sides[key]
        metric, mode = metric_of[key]
        m = _judge_paired(b.metric, n.metric, mode, th.metric_floor, th.k)
        status_regressed = _status_regressed(b, n)
        rows.append({
            "cell": b_labels[key], "seeds": f"{b.ok}/{b.seeds} → {n.ok}/{n.seeds}",
            "throughput_base": t["base"], "throughput_new": t["new"],
            "throughput_change": t["change"], "throughput_threshold": t["threshold"],
            "throughput_evidence": t["evidence"], "throughput_p": t["p"],
            "throughput_p_holm": t["p_holm"],
            "throughput_verdict": t["verdict"], "throughput_reason": t["reason"],
            "metric": metric, "metric_direction": mode, "metric_base": m["base"],
            "metric_new": m["new"], "metric_change": m["change"],
            "metric_threshold": m["threshold"], "metric_noise": m["noise"],
            "metric_verdict": m["verdict"],
            "status_verdict": "regressed" if status_regressed else "unchanged",
            "regressed": bool(t["verdict"] == "regressed" or m["regressed"]
                              or status_regressed),
        })
    unmatched = [k for k in n_sides if k not in b_sides]
    near = _closest(base, new, b_labels, unmatched)
    if not rows:
        shown = "; ".join(f"{n_labels[k]}: {near[k]}" for k in unmatched[:3])
        more = f"; and {len(unmatched) - 3} more new group(s)" if len(unmatched) > 3 else ""
        raise UsageError(f"nothing to compare: no cell group of {str(new_dir)!r} matches one "
                         f"of {str(base_dir)!r}; {shown}{more}")  # a run holds cells
    return Comparison(
        table=pd.DataFrame(rows),
        only_base=[b_labels[k] for k in b_sides if k not in n_sides],
        only_new=[f"{n_labels[k]}: {near[k]}" for k in unmatched],
        missing=_missing(new, b_sides, b_labels, n_sides),
        errors=[f"{n_labels[match_key(r['cell'])]} | seed {r['cell']['seed']}: "
                f"{_first_line(r.get('error'))}"
                for r in new.records if r.get("status") == Status.ERROR],
    )


def _metrics(run: ReportRun, chosen: str | None = None) -> dict[str, tuple[str, str]]:
    """Each base group's judged metric (``chosen``, else the problem's target metric, else
    the final loss) and its better side: the side its cells' ``metric_directions`` gives,
    else the target's mode, else the one its name says (lower when it says none)."""
    if chosen is not None and chosen not in run.summary.columns:
        raise UsageError(f"--metric {chosen!r}: the base run has no such column")
    by_id = run.summary.set_index("cell_id")
    out: dict[str, tuple[str, str]] = {}
    for rec in run.records:
        row = by_id.loc[rec["cell_id"]]
        metric, mode = run.final_metric(str(row["problem"]))
        if chosen is not None and chosen != metric:
            metric, mode = chosen, better_side(chosen) or metric_mode(chosen)
        # the target's own mode (in ``mode``) comes before what its name says
        side = parse_directions(row.get("metric_directions")).get(metric, mode)
        out.setdefault(match_key(rec["cell"]), (metric, side))
    return out


def _cpu(run: ReportRun) -> str | None:
    machine = run.manifest.get("machine")
    cpu = machine.get("cpu") if isinstance(machine, dict) else None
    return cpu if isinstance(cpu, str) and cpu else None


def _closest(base: ReportRun, new: ReportRun, b_labels: dict[str, str],
             unmatched: list[str]) -> dict[str, str]:
    """For each new group that matches none of the base's (by match key): the closest
    base group and exactly which keys differ (:mod:`harness.report.matching`)."""
    b_keys = {match_key(r["cell"]): group_keys(r["cell"]) for r in base.records}
    n_keys = {match_key(r["cell"]): group_keys(r["cell"]) for r in new.records}
    candidates = [(b_labels[k], keys) for k, keys in b_keys.items()]
    return {k: explain(n_keys[k], candidates) for k in unmatched}


def _missing(new: ReportRun, b_sides: dict[str, _Side], b_labels: dict[str, str],
             n_sides: dict[str, _Side]) -> list[str]:
    """The cells the new run has no record of: every seed of the base's cell groups, and
    every cell of the new run's own grid (its manifest's ``cells``)."""
    absent: dict[tuple[str, int], str] = {}
    for key, side in b_sides.items():
        for seed in side.status:
            if seed not in (n_sides[key].status if key in n_sides else {}):
                absent[(key, seed)] = f"{b_labels[key]} | seed {seed}"
    recorded = {r["cell_id"] for r in new.records}
    cells = new.manifest.get("cells")
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict) or cell.get("cell_id") in recorded:
            continue
        fields = {k: v for k, v in cell.items() if k != "cell_id"}
        try:
            key, seed = match_key(fields), int(cell["seed"])
        except (KeyError, TypeError, ValueError):
            continue
        label = f"{fields.get('problem')} | {fields.get('optimizer')} | {fields.get('device')}"
        absent.setdefault((key, seed), f"{label} | seed {seed}")
    return list(absent.values())


def _first_line(error: Any) -> str:
    lines = str(error or "").strip().splitlines()
    return lines[0] if lines else "no message"


def format_comparison(cmp: Comparison, allow_missing: bool = False) -> str:
    """The table a terminal (or a CI log) shows, then the unmatched and the lost cells."""
    lines: list[str] = []
    if cmp.table.empty:
        lines.append("(no cells in common)")
    else:
        t = cmp.table
        shown = pd.DataFrame({
            "cell": t["cell"], "seeds ok": t["seeds"],
            "per s base": t["throughput_base"].map(_fmt),
            "per s new": t["throughput_new"].map(_fmt),
            "change": t["throughput_change"].map(_pct),
            "p": t["throughput_p"].map(_p), "p Holm": t["throughput_p_holm"].map(_p),
            "throughput": t["throughput_verdict"],
            "metric": t["metric"] + " (" + t["metric_direction"] + ")",
            "base": t["metric_base"].map(_fmt), "new": t["metric_new"].map(_fmt),
            "m change": t["metric_change"].map(_pct),
            "m thr": t["metric_threshold"].map(_thr),
            "final metric": t["metric_verdict"], "status": t["status_verdict"],
        })
        lines.append(shown.to_string(index=False))
    for title, items in (("only in base", cmp.only_base), ("only in new", cmp.only_new)):
        if items:
            lines.append(f"\n{len(items)} cell group(s) {title} (not compared):")
            lines.extend(f"  {i}" for i in items)
    verdict = "accepted (--allow-missing)" if allow_missing else "the gate fails"
    for title, items in (("missing from the new run", cmp.missing),
                         ("ended error in the new run", cmp.errors)):
        if items:
            lines.append(f"\n{len(items)} cell(s) {title}; {verdict}:")
            lines.extend(f"  {i}" for i in items)
    if cmp.inconclusive:
        lines.append(f"\n{len(cmp.inconclusive)} cell group(s) with an inconclusive "
                     "throughput change (not a failure):")
        lines.extend(f"  {i}" for i in cmp.inconclusive)
    n_bad = int(cmp.table["regressed"].sum()) if len(cmp.table) else 0
    lines.append(f"\n{n_bad} of {len(cmp.table)} matched cell group(s) regressed." if n_bad
                 else f"\nNo regression in {len(cmp.table)} matched cell group(s).")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _pct(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:+.1f}%"


def _p(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{x:.2g}"


def _thr(x: float) -> str:
    return "-" if not math.isfinite(x) else f"±{100 * x:.1f}%"
