"""Cell records: how one is written, and what a record or manifest must hold to be read.

Every reader (tables, ``show``, ``compare``, ``export``, the report, ``--resume``) goes
through :func:`record_problem` and :func:`manifest_problems`, so a damaged file is
named and left out the same way everywhere.
"""

from __future__ import annotations

import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Union

from harness.atomic import write_atomic
from harness.cell import Cell
from harness.outcome import STATUSES, CellResult
from harness.results.schema import NUMERIC_SUMMARY, TEXT_SUMMARY


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
    "repository": (dict[str, Any] | None, "an object or null"),
    "plugin_sources": (dict[str, dict[str, Any]], "an object of objects"),
    "resumed": (list[Any], "a list"),
    "extended": (list[dict[str, Any]], "a list of objects"),
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
    "tune": (dict[str, str | int], "an object of strings and integers"),
}


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
        if not all(k in point for k in ("step", "elapsed_s")) or not _numbers(point):
            return f"its curve's point {i} is not step, elapsed_s and numbers"
    return None


def _numbers(point: dict[Any, Any]) -> bool:
    """``conforms(point, dict[str, Number])``, written out: a run holds thousands of curve
    points, and the general check took half of reading them."""
    return all(isinstance(k, str) and (v is None or (isinstance(v, int | float)
                                                     and not isinstance(v, bool)))
               for k, v in point.items())
