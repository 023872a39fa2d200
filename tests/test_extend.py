"""``harness run ... --out DIR --extend``: a finished run grows by a grid's new cells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli

BASE = ["run", "-m", "regression", "-s", "0-1", "--steps", "20", "--workers", "0", "--quiet"]


def _records(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "cells").glob("*.json"))}


def _manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return data


def test_a_finished_run_grows_by_the_new_cells_only(tmp_path: Path) -> None:
    first = run_cli(*BASE, "-o", "sgd,adam", "--out", "r", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = _records(tmp_path / "r")
    assert len(before) == 4
    grown = run_cli(*BASE, "-o", "sgd,adam,adamw", "--out", "r", "--extend", cwd=tmp_path)
    assert grown.returncode == 0, grown.stderr
    assert "6 of 6 cells recorded" in grown.stdout and "(4 already done)" in grown.stdout
    after = _records(tmp_path / "r")
    assert len(after) == 6
    assert all(after[name] == data for name, data in before.items())  # kept, not rerun
    manifest = _manifest(tmp_path / "r")
    assert manifest["options"]["grid_spec"]["optimizers"] == ["sgd", "adam"]  # the first grid
    (extension,) = manifest["extended"]
    assert "--extend" in extension["command"]
    assert extension["grid_spec"]["optimizers"] == ["sgd", "adam", "adamw"]
    assert len(extension["cells"]) == 2 and all("adamw" in c for c in extension["cells"])
    assert len(manifest["cells"]) == 6
    # summary, show and the report cover the whole run
    show = run_cli("show", "r", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert show.stdout.count("regression") >= 6 and "extended " in show.stdout
    assert {"sgd", "adam", "adamw"} <= set(show.stdout.split())
    report = run_cli("report", "r", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "6 recorded of 6" in (tmp_path / "r" / "report" / "index.html").read_text()
    # a resumed extended run is the whole run: nothing left to do
    resumed = run_cli("run", "--resume", "r", "--quiet", "--workers", "0", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "(6 already done)" in resumed.stdout and _records(tmp_path / "r") == after
    # a second extension adds to the list
    again = run_cli(*BASE, "-o", "rmsprop", "-s", "0", "--out", "r", "--extend", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(_manifest(tmp_path / "r")["extended"]) == 2 and len(_records(tmp_path / "r")) == 7


@pytest.mark.long
def test_an_extension_that_changes_what_defines_finished_cells_is_refused(
        tmp_path: Path) -> None:
    first = run_cli(*BASE, "-o", "sgd", "--out", "r", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = _records(tmp_path / "r")
    manifest = (tmp_path / "r" / "manifest.json").read_bytes()
    refusals = [
        (["-m", "regression", "-o", "sgd,adam", "-s", "0", "--steps", "30"],
         "ran with steps 20 and this grid gives 30"),
        ([*BASE[1:], "-o", "adam", "--windows", "10"], "--windows 10 differs"),
        ([*BASE[1:], "-o", "adam", "--opt-impl", "foreach"], "--opt-impl foreach differs"),
    ]
    for args, words in refusals:
        result = run_cli("run", *args, "--out", "r", "--extend", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
            result.stderr
    assert _records(tmp_path / "r") == before  # nothing ran, nothing was rewritten
    assert (tmp_path / "r" / "manifest.json").read_bytes() == manifest
    (tmp_path / "empty").mkdir()
    for args, words in (
            (["--out", "empty", "--extend"], "holds no harness run to extend"),
            (["--extend"], "--extend goes with --out DIR"),
            (["--out", "r", "--extend", "--resume", "r"], "give one of them"),
            (["--out", "r"], "or add this grid's new cells to it with --extend")):
        result = run_cli(*BASE, "-o", "sgd", *args, cwd=tmp_path)
        assert result.returncode == 2 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
