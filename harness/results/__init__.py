"""Results: what a run writes, and everything that reads it back.

Torch-free (an import-linter contract): ``show``, ``compare``, ``export`` and the report
read runs without the training side.

* :mod:`~harness.results.schema`: the summary's columns, defined once;
* :mod:`~harness.results.records`: one cell's record, and what makes one readable;
* :mod:`~harness.results.tables`: the summary and curves tables built from records;
* :mod:`~harness.results.directory`: a run directory, records in and tables out.
"""

from __future__ import annotations

from harness.outcome import skipped as skipped_result
from harness.results.directory import RunDirectory
from harness.results.records import (
    conforms,
    json_type,
    manifest_problems,
    record_of,
    record_problem,
    write_json_atomic,
)
from harness.results.schema import NUMERIC_SUMMARY, SUMMARY_COLUMNS, TEXT_SUMMARY
from harness.results.tables import CURVE_KEYS, curves_frame, summary_frame

__all__ = [
    "CURVE_KEYS", "NUMERIC_SUMMARY", "SUMMARY_COLUMNS", "TEXT_SUMMARY", "RunDirectory",
    "conforms", "curves_frame", "json_type", "manifest_problems", "record_of",
    "record_problem", "skipped_result", "summary_frame", "write_json_atomic",
]
