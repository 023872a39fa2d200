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
import sys
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union

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


# -- shapes: what a file must hold for the code reading it ---------------------------------
def conforms(value: Any, hint: Any) -> bool:
    """Whether decoded JSON ``value`` has the shape of the type ``hint``.

    A ``Path`` is a string, a ``float`` may be an int, a ``bool`` is no number; a hint of
    another kind (a dataclass, a ``Literal``) passes.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    if origin is Union or origin is types.UnionType:
        return any(conforms(value, h) for h in args)
    if hint is list or origin is list:
        item = args[0] if args else Any
        return isinstance(value, list) and all(conforms(v, item) for v in value)
    if hint is dict or origin is dict:
        k, v = args if args else (Any, Any)
        return isinstance(value, dict) and all(conforms(a, k) and conforms(b, v)
                                               for a, b in value.items())
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str or hint is Path:
        return isinstance(value, str)
    return True


Number = int | float | None
#: The manifest fields readers use, with their shapes and the words for a wrong one.
MANIFEST_FIELDS: dict[str, tuple[Any, str]] = {
    "created": (str, "a string"),
    "command": (list[str], "a list of strings"),
    "options": (dict[str, Any], "an object"),
    "cells": (list[dict[str, Any]], "a list of objects"),
    "cell_order": (list[str], "a list of strings"),
    "devices": (dict[str, str], "an object of strings"),
    "versions": (dict[str, Any], "an object"),
    "machine": (dict[str, Any], "an object"),
    "git": (dict[str, Any] | None, "an object or null"),
    "resumed": (list[Any], "a list"),
}


def manifest_problems(data: Any) -> list[tuple[str, str]]:
    """What is wrong with a decoded manifest, as (field, what it should be); [] when
    nothing is. ``""`` names the whole manifest."""
    if not isinstance(data, dict):
        return [("", "a JSON object")]
    wrong = [(k, words) for k, (hint, words) in MANIFEST_FIELDS.items()
             if k in data and not conforms(data[k], hint)]
    plugins = data.get("versions", {}).get("plugins") \
        if isinstance(data.get("versions"), dict) else None
    if plugins is not None and not isinstance(plugins, dict):
        wrong.append(("versions", "an object whose plugins are an object"))
    return wrong


def json_type(value: Any) -> str:
    """What a decoded JSON value is, in words: 'an object', 'a list', 'null'..."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value), "?")


def _param_value(value: Any) -> bool:
    """What a problem parameter can be: a scalar, or a list of them."""
    if isinstance(value, list):
        return all(_param_value(v) for v in value)
    return isinstance(value, str | int | float | bool)


#: The fields of a record's ``cell`` that :meth:`Cell.from_dict` reads, with their shapes.
CELL_FIELDS: dict[str, Any] = {
    "problem": str, "optimizer": str, "device": str,
    "seed": int, "steps": int, "batch_size": int,
}
CELL_OPTIONAL: dict[str, tuple[Any, str]] = {
    "params": (dict[str, Any], "an object"), "hyper": (dict[str, Any], "an object"),
    "roles": (dict[str, dict[str, Any]], "an object of objects"),
    "versions": (dict[str, str], "an object of strings"),
}
#: Summary fields the readers compute with: numbers (or null), and labels.
NUMERIC_SUMMARY = (*SUMMARY_COLUMNS[7:16], "steps_done", "target_threshold")
TEXT_SUMMARY = ("data_source", "sample_unit", "target_metric")


def record_problem(rec: Any, stem: str) -> str | None:
    """What is wrong with a decoded cell record read from ``<stem>.json``; None when it has
    every field the readers and ``--resume`` rely on, with its shape."""
    if not isinstance(rec, dict):
        return f"it holds {json_type(rec)}, not an object"
    for key, hint in (("cell_id", str), ("key", str), ("status", str), ("cell", dict)):
        if key not in rec:
            return f"it has no {key!r}"
        if not conforms(rec[key], hint):
            return f"its {key!r} is {json_type(rec[key])}"
    if rec["status"] not in STATUSES:
        return f"its status {rec['status']!r} is not one of {', '.join(STATUSES)}"
    for key in ("error", "traceback"):
        if not conforms(rec.get(key), str | None):
            return f"its {key!r} is {json_type(rec[key])}, not a string"
    for key in ("summary", "artifacts"):
        if not conforms(rec.get(key, {}), dict[str, Any]):
            return f"its {key!r} is {json_type(rec[key])}, not an object"
    problem = _summary_problem(rec.get("summary", {})) or _curve_problem(rec.get("curve", []))
    if problem:
        return problem
    cell = rec["cell"]
    for key, hint in CELL_FIELDS.items():
        if key not in cell:
            return f"its cell has no {key!r}"
        if not conforms(cell[key], hint):
            return f"its cell's {key!r} is {json_type(cell[key])}"
    for key, (hint, words) in CELL_OPTIONAL.items():
        if key in cell and not conforms(cell[key], hint):
            return f"its cell's {key!r} is not {words}"
    if not all(_param_value(v) for v in cell.get("params", {}).values()):
        return "its cell's 'params' hold an object"
    for role, spec in cell.get("roles", {}).items():
        if not conforms(spec.get("optimizer"), str) \
                or not conforms(spec.get("hyper", {}), dict[str, Any]):
            return f"its cell's role {role!r} has no optimizer name or hyperparameters"
    parsed = Cell.from_dict(cell)
    if parsed.key != rec["key"] or parsed.cell_id != rec["cell_id"]:
        return "its key or cell_id is not that of its cell"
    if stem != parsed.cell_id:
        return "it is the record of another cell than its file name says"
    return None


def _summary_problem(summary: dict[str, Any]) -> str | None:
    for key, value in summary.items():
        if key in NUMERIC_SUMMARY and not conforms(value, Number):
            return f"its summary's {key!r} is {json_type(value)}, not a number"
        if key in TEXT_SUMMARY and not conforms(value, str | None):
            return f"its summary's {key!r} is {json_type(value)}, not a string"
        if isinstance(value, dict | list):
            return f"its summary's {key!r} is {json_type(value)}"
    return None


def _curve_problem(curve: Any) -> str | None:
    if not isinstance(curve, list):
        return f"its 'curve' is {json_type(curve)}, not a list"
    for i, point in enumerate(curve):
        if not isinstance(point, dict):
            return f"its curve's point {i} is {json_type(point)}, not an object"
        if not all(k in point for k in ("step", "elapsed_s")) \
                or not conforms(point, dict[str, Number]):
            return f"its curve's point {i} is not step, elapsed_s and numbers"
    return None


class RunDirectory:
    """A results directory: cell records in, tables out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cells_dir = path / "cells"
        #: Why each corrupt record found by the last :meth:`scan` is corrupt.
        self.corrupt_reasons: dict[Path, str] = {}
        self._warned: set[str] = set()

    def warn(self, message: str) -> None:
        """``message`` on stderr as a warning, once for this directory."""
        if message not in self._warned:
            self._warned.add(message)
            print(f"harness: warning: {message}", file=sys.stderr)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.path / "manifest.json", manifest)

    def manifest(self) -> dict[str, Any]:
        """The manifest, as far as it can be read: {} when there is none or it is not a
        JSON object, without the fields whose shape is wrong; each problem is warned of."""
        path = self.path / "manifest.json"
        try:
            data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except OSError as exc:
            self.warn(f"{path} cannot be read ({exc.strerror}); it is ignored")
            return {}
        except (ValueError, RecursionError):
            self.warn(f"{path} is not valid JSON; it is ignored")
            return {}
        wrong = manifest_problems(data)
        if wrong and wrong[0][0] == "":
            self.warn(f"{path} holds {json_type(data)}, not a JSON object; it is ignored")
            return {}
        for key, words in wrong:
            self.warn(f"{path}: {key!r} is not {words}; it is ignored")
            data.pop(key, None)
        result: dict[str, Any] = data
        return result

    def write_cell(self, result: CellResult) -> Path:
        target = self.cells_dir / f"{result.cell.cell_id}.json"
        write_json_atomic(target, record_of(result))
        return target

    def scan(self) -> tuple[list[dict[str, Any]], list[Path]]:
        """Every valid cell record, and the paths of corrupt ones: truncated, not JSON,
        not of the shape :func:`record_problem` checks, or not a record of the cell its
        name says. Why each is corrupt is kept in :attr:`corrupt_reasons`."""
        good: list[dict[str, Any]] = []
        self.corrupt_reasons = {}
        if not self.cells_dir.is_dir():
            return good, []
        for p in sorted(self.cells_dir.glob("*.json")):
            try:
                rec = json.loads(p.read_text("utf-8"))
                problem = record_problem(rec, p.stem)
            except OSError as exc:
                problem = f"it cannot be read ({exc.strerror})"
            except (ValueError, RecursionError):
                problem = "it is not valid JSON"
            except (KeyError, TypeError, AttributeError) as exc:  # a shape not foreseen
                problem = f"it is malformed ({type(exc).__name__}: {exc})"
            if problem is None:
                good.append(rec)
            else:
                self.corrupt_reasons[p] = problem
        return good, list(self.corrupt_reasons)

    def records(self) -> list[dict[str, Any]]:
        """The valid records of this run's cells, in the grid's order; each corrupt one
        is warned of and left out.

        Records of cells no longer in the manifest (say, from before a plugin upgrade
        changed their keys) stay on disk but are left out of the tables.
        """
        good, corrupt = self.scan()
        for p in corrupt:
            self.warn(f"{p} is corrupt ({self.corrupt_reasons[p]}); it is left out")
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
