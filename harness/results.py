"""Writing results: one record per finished cell, tables rebuilt from the records.

Layout of a run directory::

    manifest.json         what was run, on what, with which versions
    cells/<cell_id>.json  one record per finished cell, written atomically
    summary.csv           one row per cell (also summary.parquet)
    curves.parquet        one row per cell and logging window
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.atomic import write_atomic
from harness.cell import Cell, format_pairs, format_value
from harness.training import STATUSES, CellResult

#: The summary's leading columns, in order.
SUMMARY_COLUMNS = (
    "model", "optimizer", "device", "seed", "status", "steps", "batch_size",
    "final_loss", "best_loss", "time_to_target_s", "steps_to_target",
    "samples_per_s", "step_time_ms", "warmup_s", "peak_mem_mb", "wall_s", "data_source",
)
CURVE_KEYS = ("cell_id", "model", "optimizer", "device", "seed", "step", "elapsed_s")


def _clean(value: Any) -> Any:
    """JSON has no NaN: store it as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as JSON (NaN stored as null), written atomically."""
    write_atomic(path, json.dumps(_clean(data), indent=1, allow_nan=False))


def record_of(result: CellResult) -> dict[str, Any]:
    cell = result.cell
    return {
        "cell_id": cell.cell_id,
        "key": cell.key,
        "cell": cell.to_dict(),
        "status": result.status,
        "error": result.error,
        "traceback": result.traceback,
        "summary": dict(result.summary),
        "curve": [dict(r) for r in result.curve],
        "artifacts": dict(result.artifacts),
    }


def skipped_result(cell: Cell, reason: str) -> CellResult:
    return CellResult(cell=cell, status="skipped", summary={}, error=reason)


class RunDirectory:
    """A results directory: cell records in, tables out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cells_dir = path / "cells"

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.path / "manifest.json", manifest)

    def manifest(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.path / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data

    def write_cell(self, result: CellResult) -> Path:
        target = self.cells_dir / f"{result.cell.cell_id}.json"
        write_json_atomic(target, record_of(result))
        return target

    def scan(self) -> tuple[list[dict[str, Any]], list[Path]]:
        """Every valid cell record, and the paths of corrupt ones (truncated, not JSON,
        or not a record of the cell its name says)."""
        good: list[dict[str, Any]] = []
        corrupt: list[Path] = []
        if not self.cells_dir.is_dir():
            return good, corrupt
        for p in sorted(self.cells_dir.glob("*.json")):
            try:
                rec = json.loads(p.read_text("utf-8"))
                cell = Cell.from_dict(rec["cell"])
                if cell.cell_id != rec["cell_id"] or p.stem != cell.cell_id \
                        or rec["status"] not in STATUSES:
                    raise ValueError("record does not match its cell")
            except (OSError, ValueError, KeyError, TypeError):
                corrupt.append(p)
                continue
            good.append(rec)
        return good, corrupt

    def records(self) -> list[dict[str, Any]]:
        """The valid records of this run's cells, in the grid's order.

        Records of cells no longer in the manifest (say, from before a plugin upgrade
        changed their keys) stay on disk but are left out of the tables.
        """
        good, _ = self.scan()
        cell_order = self.manifest().get("cell_order")
        if cell_order is None:
            return good
        order = {cid: i for i, cid in enumerate(cell_order)}
        return sorted((r for r in good if r["cell_id"] in order),
                      key=lambda r: order[r["cell_id"]])

    # -- tables -----------------------------------------------------------------
    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        records = self.records()
        return summary_frame(records), curves_frame(records)

    def write_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        summary, curves = self.tables()
        summary.to_csv(self.path / "summary.csv", index=False)
        _to_parquet(summary, self.path / "summary.parquet")
        _to_parquet(curves, self.path / "curves.parquet")
        return summary, curves


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


def _param_column(name: str) -> str:
    return f"param.{name}" if name in SUMMARY_COLUMNS or name in _EXTRA else name


_EXTRA = ("cell_id", "error", "params", "hyperparameters", "steps_done")


def summary_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for rec in records:
        cell = Cell.from_dict(rec["cell"])
        s = rec.get("summary") or {}
        row: dict[str, Any] = {
            "model": cell.problem, "optimizer": cell.optimizer, "device": cell.device,
            "seed": cell.seed, "status": rec["status"], "steps": cell.steps,
            "batch_size": cell.batch_size,
        }
        for col in SUMMARY_COLUMNS[7:]:
            value = s.get(col)
            row[col] = math.nan if value is None and col != "data_source" else value
        row["steps_done"] = s.get("steps_done", 0)
        row["params"] = format_pairs(cell.params)
        row["hyperparameters"] = format_pairs(cell.hyper)
        for k, v in cell.params:
            row[_param_column(k)] = format_value(v) if isinstance(v, tuple) else v
        for k, v in cell.hyper:
            row[f"hp.{k}"] = format_value(v) if isinstance(v, tuple | list) else v
        known = set(SUMMARY_COLUMNS) | {"steps_done"}
        for k, v in s.items():
            if k not in known:
                row[k] = math.nan if v is None else v
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
