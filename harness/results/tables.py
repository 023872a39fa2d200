"""The tables rebuilt from a run's records: ``summary`` (one row per cell) and ``curves``
(one row per cell and logging window), and how they are written."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.atomic import write_atomic
from harness.cell import Cell, format_pairs, format_value
from harness.results.schema import BY_NAME, SUMMARY_COLUMNS
from harness.results.tuning import tune_columns

#: The summary's columns read off the cell, not its summary.
LEAD = ("model", "optimizer", "device", "seed", "status", "steps", "batch_size")
CURVE_KEYS = ("cell_id", "model", "optimizer", "device", "seed", "step", "elapsed_s")


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    buffer = io.BytesIO()
    _arrow_safe(frame).to_parquet(buffer, index=False)
    write_atomic(path, buffer.getvalue())


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns hold one type each (mixed ones become text), missing values None."""
    frame = frame.copy()
    for col in [c for c in frame.columns if frame[c].dtype == object]:  # not pandas 3's str
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in frame[col]]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1:
            values = [None if v is None else str(v) for v in values]
        frame[col] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def write_tables(path: Path, summary: pd.DataFrame, curves: pd.DataFrame) -> None:
    """``summary.csv``, ``summary.parquet`` and ``curves.parquet`` in ``path``, each written
    atomically: a reader sees the old table or the new one, never half of one."""
    write_atomic(path / "summary.csv", summary.to_csv(index=False))
    _to_parquet(summary, path / "summary.parquet")
    _to_parquet(curves, path / "curves.parquet")


def _param_column(name: str) -> str:
    """A problem parameter's column: its name, or ``param.NAME`` where a column has it."""
    return f"param.{name}" if name in BY_NAME else name


def summary_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    records = list(records)
    tuning = tune_columns(records)
    for rec, tune in zip(records, tuning, strict=True):
        cell = Cell.from_dict(rec["cell"])
        s = rec.get("summary") or {}
        row: dict[str, Any] = {
            "model": cell.problem, "optimizer": cell.optimizer, "device": cell.device,
            "seed": cell.seed, "status": rec["status"], "steps": cell.steps,
            "batch_size": cell.batch_size,
        }
        for col in SUMMARY_COLUMNS[len(LEAD):]:
            value = s.get(col)
            row[col] = math.nan if value is None and col != "data_source" else value
        row["steps_done"] = s.get("steps_done", 0)
        row["params"] = format_pairs(cell.params)
        row["hyperparameters"] = format_pairs(cell.hyper)
        for k, v in cell.params:
            row[_param_column(k)] = format_value(v) if isinstance(v, tuple) else v
        for k, v in cell.hyper:
            row[f"hp.{k}"] = format_value(v) if isinstance(v, tuple | list) else v
        known = {*SUMMARY_COLUMNS, "steps_done"}
        for k, v in s.items():
            if k not in known:
                row[k] = math.nan if v is None else v
        row.update(tune)
        row["error"] = rec.get("error")
        row["cell_id"] = rec["cell_id"]
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else list(SUMMARY_COLUMNS))
    lead = [c for c in SUMMARY_COLUMNS if c in frame.columns]
    return frame[lead + [c for c in frame.columns if c not in lead]]


def curves_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for rec in records:
        cell = rec["cell"]
        for point in rec.get("curve") or []:
            row = {"cell_id": rec["cell_id"], "model": cell["problem"],
                   "optimizer": cell["optimizer"], "device": cell["device"],
                   "seed": cell["seed"]}
            row.update({k: (math.nan if v is None else v) for k, v in point.items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(CURVE_KEYS))
