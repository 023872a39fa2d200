"""Damaged files on disk: cell records, manifests and the cost book.

A reader (``show``, ``report``, ``compare``, ``export``) warns once per damaged file and
carries on with the rest; ``run --resume`` moves a damaged record aside and runs its cell
again, and refuses a damaged manifest with one line; a damaged cost book is ignored and
rewritten. Nothing already recorded is lost.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.results import RunDirectory

GRID = ["-m", "regression", "-o", "sgd", "-s", "0-1", "--steps", "20", "--workers", "0",
        "--quiet"]

Capture = pytest.CaptureFixture[str]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("damaged") / "base"
    assert main(["run", *GRID, "--out", str(out)]) == 0
    return out


def _copy(run: Path, dest: Path) -> tuple[Path, list[Path]]:
    shutil.copytree(run, dest)
    return dest, sorted((dest / "cells").glob("*.json"))


def _edit(path: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    rec = json.loads(path.read_text("utf-8"))
    new = edit(rec)
    path.write_text(json.dumps(rec if new is None else new), "utf-8")


def _set_in(keys: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(rec: dict[str, Any]) -> None:
        target = rec
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return edit


DAMAGE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "summary is a list": _set_in(("summary",), [1, 2]),
    "curve holds numbers": _set_in(("curve",), [1, "x"]),
    "params is an int": _set_in(("cell", "params"), 3),
    "no key": lambda rec: rec.pop("key") and None,
    "unknown status": _set_in(("status",), "finished"),
    "artifacts is a list": _set_in(("artifacts",), []),
    "seed is a string": _set_in(("cell", "seed"), "0"),
    "not an object": lambda rec: [rec],
    "summary value is an object": _set_in(("summary", "final_loss"), {"x": 1}),
}


def _rows(shown: str) -> int:
    """The cells ``harness show`` printed."""
    return sum(line.split()[:1] == ["regression"] for line in shown.splitlines())


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("harness: warning: ")]


def test_an_intact_run_reads_without_warnings(base_run: Path, capsys: Capture) -> None:
    good, corrupt = RunDirectory(base_run).scan()
    assert len(good) == 2 and corrupt == []
    assert main(["show", str(base_run)]) == 0
    assert capsys.readouterr().err == ""


def _reader_args(reader: str, base_run: Path, run: Path) -> list[str]:
    """The command line of ``reader`` on the damaged copy ``run`` of ``base_run``."""
    return {"show": ["show", str(run)], "report": ["report", str(run)],
            "export": ["export", str(run), "--format", "pytest-benchmark"],
            # A floor of 100 %: the intact seed's throughput against the median of both
            # seeds' is machine noise, which is not what this test is about. The damaged
            # record is a cell the run lost, which fails the gate unless allowed.
            "compare": ["compare", str(base_run), str(run), "--throughput-floor", "1",
                        "--allow-missing"]}[reader]


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("reader", ["show", "report", "export", "compare"])
def test_readers_warn_of_a_damaged_record_and_read_the_rest(
    base_run: Path, tmp_path: Path, capsys: Capture, damage: str, reader: str
) -> None:
    run, files = _copy(base_run, tmp_path / "run")
    _edit(files[0], DAMAGE[damage])
    args = _reader_args(reader, base_run, run)
    assert main(args) == 0
    out, err = capsys.readouterr()
    warnings = _warnings(err)
    assert len(warnings) == 1, err  # once per damaged file, however often it is read
    assert f"{files[0]} is corrupt (" in warnings[0] and warnings[0].endswith("it is left out")
    assert "Traceback" not in err
    if reader == "show":
        assert _rows(out) == 1
    if reader == "export":
        assert len(json.loads(out)["benchmarks"]) == 1
    if reader == "compare":
        assert "1 cell(s) missing from the new run; accepted (--allow-missing)" in out
        assert main(args[:-1]) == 1  # without --allow-missing, the lost cell fails the gate
        capsys.readouterr()


@pytest.mark.parametrize("damage", ["summary is a list", "curve holds numbers",
                                    "params is an int", "no key", "not an object"])
def test_resume_moves_a_damaged_record_aside_and_runs_its_cell(
    base_run: Path, tmp_path: Path, capsys: Capture, damage: str
) -> None:
    run, files = _copy(base_run, tmp_path / "run")
    _edit(files[0], DAMAGE[damage])
    files[1].unlink()  # a missing cell too: the resume runs both
    assert main(["run", "--resume", str(run), "--workers", "0", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"{files[0]} is corrupt (" in err and "); its cell runs again" in err
    assert "Traceback" not in err
    assert files[0].with_suffix(".corrupt").exists()
    good, corrupt = RunDirectory(run).scan()
    assert corrupt == [] and len(good) == 2 and {r["status"] for r in good} == {"ok"}
    assert len(_summary_rows(run)) == 2


def _summary_rows(run: Path) -> list[str]:
    return (run / "summary.csv").read_text("utf-8").splitlines()[1:]


def test_show_warns_when_every_record_is_damaged(base_run: Path, tmp_path: Path,
                                                 capsys: Capture) -> None:
    run, files = _copy(base_run, tmp_path / "run")
    files[0].write_text(files[0].read_text("utf-8")[:50], "utf-8")  # truncated
    _edit(files[1], DAMAGE["summary is a list"])
    assert main(["show", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "(no finished cells)" in out
    warnings = _warnings(err)
    assert len(warnings) == 2
    assert f"{files[0]} is corrupt (it is not valid JSON)" in warnings[0]
    assert f"{files[1]} is corrupt (its 'summary' is a list" in warnings[1]


# -- the manifest -------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "what"), [("[1]", "a list"), ("null", "null"),
                                            ('"x"', "a string")])
@pytest.mark.parametrize("reader", ["show", "report", "export", "compare"])
def test_readers_ignore_a_manifest_that_is_not_an_object(
    base_run: Path, tmp_path: Path, capsys: Capture, text: str, what: str, reader: str
) -> None:
    run, _ = _copy(base_run, tmp_path / "run")
    (run / "manifest.json").write_text(text, "utf-8")
    args = _reader_args(reader, base_run, run)
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert _warnings(err) == [f"harness: warning: {run / 'manifest.json'} holds {what}, "
                              "not a JSON object; it is ignored"]
    if reader == "show":
        assert _rows(out) == 2  # the tables come from the records


def test_readers_drop_a_manifest_field_of_the_wrong_shape(base_run: Path, tmp_path: Path,
                                                          capsys: Capture) -> None:
    run, _ = _copy(base_run, tmp_path / "run")
    path = run / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps({**manifest, "command": 5, "devices": [1]}), "utf-8")
    assert main(["report", str(run)]) == 0
    warnings = _warnings(capsys.readouterr().err)
    assert warnings == [f"harness: warning: {path}: 'command' is not a list of strings; "
                        "it is ignored",
                        f"harness: warning: {path}: 'devices' is not an object of strings; "
                        "it is ignored"]


def _grid_spec(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        m["options"]["grid_spec"][key] = value
    return edit


MANIFEST_DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "a list": (lambda m: [1], "it holds a list, not a JSON object"),
    "null": (lambda m: None, "it holds null, not a JSON object"),
    "unknown grid_spec key": (_grid_spec("bogus", 1),
                              "options.grid_spec has an unknown field 'bogus'"),
    "seeds a string": (_grid_spec("seeds", "0-1"),
                       "options.grid_spec.seeds is not of the type list[int]"),
    "windows a string": (lambda m: m["options"].update(windows="abc"),
                         "options.windows is not an integer"),
    "windows zero": (lambda m: m["options"].update(windows=0),
                     "options.windows 0 is out of range"),
    "options a list": (lambda m: m.update(options=[]), "'options' is not an object"),
    "resumed an int": (lambda m: m.update(resumed=3), "'resumed' is not a list"),
    "speed loader unknown": (lambda m: m["options"]["speed"].update(loader="x"),
                             "options.speed.loader 'x' is not one of"),
    # the grid's own values pass the checks the command line applies (issue 21)
    "negative seed": (lambda m: m["options"]["grid_spec"].update(seeds=[-1]),
                      "options.grid_spec.seeds: -1 is out of range"),
    "seed listed twice": (lambda m: m["options"]["grid_spec"].update(seeds=[1, 1]),
                          "options.grid_spec.seeds: a seed is listed twice"),
    "no seeds": (lambda m: m["options"]["grid_spec"].update(seeds=[]),
                 "options.grid_spec.seeds: the list is empty"),
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_resume_refuses_a_damaged_manifest_in_one_line(
    base_run: Path, tmp_path: Path, capsys: Capture, damage: str
) -> None:
    run, files = _copy(base_run, tmp_path / "run")
    files[1].unlink()
    edit, message = MANIFEST_DAMAGE[damage]
    path = run / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    new = edit(manifest)
    path.write_text(json.dumps(manifest if new is None and damage != "null" else new), "utf-8")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["run", "--resume", str(run), "--workers", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"harness: error: cannot resume: {path} ")
    assert message in err[0]
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing recorded is lost or changed


def test_resume_refuses_a_truncated_manifest(base_run: Path, tmp_path: Path,
                                             capsys: Capture) -> None:
    run, _ = _copy(base_run, tmp_path / "run")
    path = run / "manifest.json"
    path.write_text(path.read_text("utf-8")[:40], "utf-8")
    assert main(["run", "--resume", str(run), "--workers", "0", "--quiet"]) == 2
    assert capsys.readouterr().err == f"harness: error: cannot resume: {path} is not valid JSON\n"


# -- the cost book ------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["[]", "null", '{"k": 1}',
                                  '{"k": {"per_step_s": "x", "fixed_s": 1}}',
                                  '{"k": {"per_step_s": -1, "fixed_s": 1}}', '{"k": {'])
def test_a_damaged_cost_book_is_ignored_and_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture, text: str
) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    book = tmp_path / "cache" / "costs.json"
    book.parent.mkdir()
    book.write_text(text, "utf-8")
    out = tmp_path / "run"
    assert main(["run", *GRID, "--out", str(out)]) == 0
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 1 and f"the cost book {book} is damaged" in warnings[0]
    assert len(RunDirectory(out).scan()[0]) == 2
    entries = json.loads(book.read_text("utf-8"))
    assert list(entries) == ["regression|activation=relu|cpu|100|sgd"]
    assert set(entries["regression|activation=relu|cpu|100|sgd"]) == {"per_step_s", "fixed_s"}
    # The book it wrote is read back without a word.
    assert main(["run", *GRID, "--out", str(tmp_path / "again")]) == 0
    assert _warnings(capsys.readouterr().err) == []
