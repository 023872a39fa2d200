"""One schema: the summary's columns are defined once (``harness/results/schema.py``) and
the README's column table, the record validator, the table writer and ``harness show`` all
agree with it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.cli.read import format_summary
from harness.outcome import STATUSES, Status
from harness.results import RunDirectory, record_problem
from harness.results.schema import (
    COLUMNS,
    NUMERIC_SUMMARY,
    SHOW_COLUMNS,
    SUMMARY_COLUMNS,
    TEXT_SUMMARY,
)

README = Path(__file__).parent.parent / "README.md"
BASELINE = Path(__file__).parent.parent / "benchmarks" / "baseline"
ROW = re.compile(r"^\| `([a-z_]+)` \| (\w+) \| (.*?) \| (yes)? \|$")


def readme_columns() -> list[tuple[str, str, str, bool]]:
    text = README.read_text("utf-8")
    section = text.split("#### Summary columns", 1)[1].split("\n\n`status`", 1)[0]
    return [(m[1], m[2], m[3], m[4] == "yes")
            for m in (ROW.match(line) for line in section.splitlines()) if m]


def test_the_readme_column_table_is_the_schema() -> None:
    expected = [(c.name, c.kind, c.doc + ("" if c.always else " (only when it applies)"),
                 c.shown) for c in COLUMNS]
    assert readme_columns() == expected


def test_the_summary_table_leads_with_the_schema_columns_in_order() -> None:
    summary, _ = RunDirectory(BASELINE).tables()
    assert tuple(summary.columns[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS
    assert {"params", "hyperparameters", "error", "cell_id"} <= set(summary.columns)


def test_show_prints_the_shown_columns_and_the_metrics() -> None:
    summary, _ = RunDirectory(BASELINE).tables()
    header = format_summary(summary).splitlines()[0].split()
    assert summary["params"].ne("").any()  # else show drops the params column
    assert [c for c in header if c in SHOW_COLUMNS] == list(SHOW_COLUMNS)
    assert "test_loss" in header  # the problems' metrics, after status


@pytest.mark.parametrize(("field", "value"), [
    (NUMERIC_SUMMARY[0], "1.5"), (NUMERIC_SUMMARY[-1], "a"), (TEXT_SUMMARY[0], 3),
    (TEXT_SUMMARY[-1], 1.0),
])
def test_the_validator_reads_field_types_off_the_schema(field: str, value: object) -> None:
    path = next((BASELINE / "cells").glob("*.json"))
    rec = json.loads(path.read_text("utf-8"))
    assert record_problem(rec, path.stem) is None
    rec["summary"][field] = value
    assert field in (record_problem(rec, path.stem) or "")


def test_statuses_are_an_enum_whose_values_records_hold() -> None:
    assert [str(s) for s in STATUSES] == ["ok", "diverged", "timeout", "oom", "error",
                                          "skipped", "pruned"]
    assert json.dumps({"status": Status.OK}) == '{"status": "ok"}'
    assert Status("timeout").failed and not Status.SKIPPED.failed
    assert not Status.PRUNED.failed
