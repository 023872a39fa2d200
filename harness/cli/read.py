"""The commands that read a finished run without its plugins: ``show``, ``compare``,
``export``. None of them imports torch (an import-linter contract), so each starts in a
fraction of a second. ``report`` draws plugins' figures: it is :mod:`harness.cli.report`.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.cli.paths import results_dir
from harness.errors import UsageError
from harness.outcome import Status, parse_statuses
from harness.results import RunDirectory
from harness.results.schema import BY_NAME, NOISY_DISPERSION, SHOW_COLUMNS


def load_summary(path: Path) -> tuple[pd.DataFrame, RunDirectory]:
    run_dir = RunDirectory(path)
    if not path.is_dir():
        raise UsageError(f"no results directory at {str(path)!r}")
    if not (path / "cells").is_dir() and not (path / "summary.parquet").exists():
        raise UsageError(f"{str(path)!r} holds no harness results")
    summary, _ = run_dir.tables()
    return summary, run_dir


#: The widest a failure's one-line reason is printed (``--errors``: in full).
REASON_WIDTH = 160


def format_failures(summary: pd.DataFrame, tracebacks: dict[str, str] | None = None) -> str:
    """A line for each cell that did not end ``ok`` (a tuning trial stopped by its pruner
    aside: a result, counted in the tally): which cell, its status and why ("" when
    every cell is ok). ``tracebacks`` (``--errors``): every reason in full, each
    followed by the traceback its record holds (by cell id)."""
    if summary.empty or "status" not in summary.columns:
        return ""
    failed = summary[~summary["status"].isin((Status.OK, Status.PRUNED))]
    if failed.empty:
        return ""
    lines = [f"Not ok ({len(failed)} of {len(summary)} cells):"]
    cut = False
    for _, row in failed.iterrows():
        reason = " ".join(str(row.get("error") or "no reason recorded").split())
        if tracebacks is None and len(reason) > REASON_WIDTH:
            reason, cut = reason[: REASON_WIDTH - 3] + "...", True
        lines.append(f"  {_who(row)}: {row['status']}: {reason}")
        trace = (tracebacks or {}).get(str(row.get("cell_id")))
        if trace:
            lines.extend("      " + t for t in trace.rstrip().splitlines())
    if cut:
        lines.append("  (--errors prints each reason in full, with its traceback)")
    return "\n".join(lines)


def _who(row: pd.Series) -> str:
    """The cell of a summary row, as the progress bar names it."""
    parts = [str(row["model"])]
    if not _missing(row.get("params")) and row.get("params"):
        parts.append(f"[{row['params']}]")
    parts.append(str(row["optimizer"]))
    if not _missing(row.get("hyperparameters")) and row.get("hyperparameters"):
        parts.append(f"[{row['hyperparameters']}]")
    parts.append(f"{row['device']} seed {row['seed']}")
    return " ".join(parts)


def tracebacks(run_dir: RunDirectory) -> dict[str, str]:
    """Each record's traceback, by cell id (cells without one left out)."""
    return {r["cell_id"]: r["traceback"] for r in run_dir.records()
            if isinstance(r.get("traceback"), str) and r["traceback"]}


def format_summary(summary: pd.DataFrame,
                   grid: Mapping[str, set[str]] | None = None) -> str:
    """The summary table ``show`` and ``run`` print. Its ``hyperparameters`` column names
    those that tell an optimizer's rows apart and those the grid set (``grid``, from
    :func:`grid_hyperparameters`: an ``adam.lr=0.001`` run does not look like the default)."""
    if summary.empty:
        return "(no finished cells)"
    params = _param_names(summary)  # a parameter named test_size is not a metric
    metrics = [c for c in summary.columns  # train_s is a column of the schema, no metric
               if c.startswith(("test_", "train_", "eval_")) and c not in params
               and c not in BY_NAME]
    if "target_metric" in summary.columns:  # a problem's target metric, whatever its name
        metrics += [m for m in dict.fromkeys(summary["target_metric"].dropna())
                    if isinstance(m, str) and m in summary.columns and m not in metrics]
    cols = [c for c in SHOW_COLUMNS if c in summary.columns]
    cols = cols[:7] + metrics + cols[7:]
    frame = summary[cols].copy()
    if "params" in frame and (frame["params"] == "").all():
        frame = frame.drop(columns="params")
    chance = summary.get("at_chance")
    if chance is not None and "status" in frame and chance.map(_flagged).any():
        frame.insert(list(frame.columns).index("status") + 1, "at_chance",
                     [v if _flagged(v) else "" for v in chance])
    if "tune_phase" in summary.columns and summary["tune_phase"].notna().any() \
            and "status" in frame:
        frame.insert(list(frame.columns).index("status") + 1, "tune", [
            "" if not isinstance(p, str) else
            f"{p} {int(t)}{'*' if s is True else ''}"
            for p, t, s in zip(summary["tune_phase"], summary["tune_trial"],
                               summary["tune_selected"], strict=True)])
    spread = pd.to_numeric(summary.get("throughput_dispersion", pd.Series(dtype=float)),
                           errors="coerce")
    if "samples_per_s" in frame and (spread > NOISY_DISPERSION).any():
        frame.insert(list(frame.columns).index("samples_per_s") + 1, "noisy",
                     [f"±{v:.0%}" if v > NOISY_DISPERSION else "" for v in spread])
    varying, grid = _varying_hyperparameters(summary), grid or {}
    names = [c[3:] for c in summary.columns if c.startswith("hp.")]
    shown = [{k for k in names if k in varying or k in grid.get("*", ())
              or k in grid.get(str(row["optimizer"]), ())} for _, row in summary.iterrows()]
    if any(shown):
        at = list(frame.columns).index("optimizer") + 1
        frame.insert(at, "hyperparameters", [
            " ".join(f"{k}={_value(row[f'hp.{k}'])}" for k in names
                     if k in keys and not _missing(row[f"hp.{k}"]))
            for keys, (_, row) in zip(shown, summary.iterrows(), strict=True)])
    return frame.to_string(index=False, float_format=_fmt, na_rep="-")


def _flagged(value: object) -> bool:
    """An ``at_chance`` value that names metrics (not missing, not empty)."""
    return isinstance(value, str) and bool(value)


def grid_hyperparameters(manifest: Mapping[str, Any]) -> dict[str, set[str]]:
    """The hyperparameters a run's grid set, by optimizer (``"*"``: a bare ``--set
    lr=...``, for every optimizer that takes it), from its manifest's grid."""
    options = manifest.get("options")
    spec = options.get("grid_spec") if isinstance(options, Mapping) else None
    if not isinstance(spec, Mapping):
        return {}
    out: dict[str, set[str]] = {}
    tables = spec.get("optimizer")
    for name, table in (tables.items() if isinstance(tables, Mapping) else ()):
        if isinstance(table, Mapping):
            out[str(name)] = {str(k) for k in table}
    bare = spec.get("params")
    if isinstance(bare, Mapping):
        out["*"] = {str(k) for k in bare}
    return out


def _param_names(summary: pd.DataFrame) -> set[str]:
    """The problem parameters' names, read off the ``params`` column (``k=v,k2=v2``)."""
    if "params" not in summary.columns:
        return set()
    return {name for text in summary["params"].dropna()
            for name in re.findall(r"(?:^|,)([a-z0-9][a-z0-9._-]*)=", str(text))}


def _varying_hyperparameters(summary: pd.DataFrame) -> list[str]:
    """The hyperparameters that take more than one value for some optimizer: what tells
    its rows apart."""
    names = [c[3:] for c in summary.columns if c.startswith("hp.")]
    if "optimizer" not in summary.columns:
        return []
    return [k for k in names
            if any(g[f"hp.{k}"].map(_value).nunique(dropna=False) > 1
                   for _, g in summary.groupby("optimizer", sort=False))]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value(value: Any) -> str:
    return "-" if _missing(value) else _fmt(value) if isinstance(value, float) else str(value)


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def cmd_show(args: argparse.Namespace, argv: Sequence[str]) -> int:
    wanted = None if args.status is None else parse_statuses(args.status, "--status")
    summary, run_dir = load_summary(Path(args.dir))
    manifest = run_dir.manifest()
    if manifest:
        print(f"run of {manifest.get('created', '?')}: {' '.join(manifest.get('command', []))}")
        for extension in manifest.get("extended") or []:
            if isinstance(extension, dict):
                print(f"extended {extension.get('at', '?')}: "
                      f"{' '.join(map(str, extension.get('command') or []))}")
    if wanted is not None and not summary.empty:
        summary = summary[summary["status"].isin([str(s) for s in wanted])]
    print(format_summary(summary, grid_hyperparameters(manifest)))
    failures = format_failures(summary, tracebacks(run_dir) if args.errors else None)
    if failures:
        print(f"\n{failures}")
    return 0


def cmd_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.report.compare import Thresholds, compare_runs, format_comparison

    thresholds = Thresholds(k=_non_negative(args.k, "--k"),
                            throughput_floor=_non_negative(args.throughput_floor,
                                                           "--throughput-floor"),
                            metric_floor=_non_negative(args.metric_floor, "--metric-floor"),
                            alpha=_fraction(args.alpha, "--alpha"),
                            load_tolerance=_fraction(args.load_tolerance, "--load-tolerance"),
                            metric=args.metric)
    result = compare_runs(results_dir(args.base), results_dir(args.new), thresholds)
    print(format_comparison(result, args.allow_missing))
    return 1 if result.failed(args.allow_missing) else 0


def cmd_export(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.report.export import export, write

    doc, skipped = export(results_dir(args.dir), args.format)
    text = write(doc, Path(args.out) if args.out else None)
    if args.out is None:
        print(text)
    else:
        print(f"{len(doc['benchmarks'])} benchmarks written to {args.out}", file=sys.stderr)
    if skipped:
        print(f"harness: {len(skipped)} cell(s) not ok or without timing left out",
              file=sys.stderr)
    return 0


def _fraction(text: str, flag: str) -> float:
    value = _non_negative(text, flag)
    if not 0 < value < 1:
        raise UsageError(f"{flag}: {text} is out of range (a number between 0 and 1)")
    return value


def _non_negative(text: str, flag: str) -> float:
    try:
        if not text.isascii():  # float() reads other scripts' digits too
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag}: expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise UsageError(f"{flag}: {text} is out of range (a finite number >= 0)")
    return value

