"""A results directory: cell records in, tables out.

Layout::

    manifest.json         what was run, on what, with which versions
    cells/<cell_id>.json  one record per finished cell, written atomically
    summary.csv           one row per cell (also summary.parquet)
    curves.parquet        one row per cell and logging window
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from harness.outcome import CellResult
from harness.results.records import (
    json_type,
    manifest_problems,
    record_of,
    record_problem,
    write_json_atomic,
)
from harness.results.tables import curves_frame, summary_frame, write_tables


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
        write_tables(self.path, summary, curves)
        return summary, curves
