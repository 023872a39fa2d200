"""Cell records, the tables rebuilt from them and the run directory, on hand-made records:
every reason a record is corrupt, named (issue 23, item 7), and what the tables hold."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from harness.outcome import STATUSES
from harness.results import (
    RunDirectory,
    conforms,
    curves_frame,
    json_type,
    manifest_problems,
    record_of,
    record_problem,
    summary_frame,
    write_json_atomic,
)
from harness.results.schema import SUMMARY_COLUMNS
from harness.results.tables import write_tables
from tests.known_runs import cell, result, write_run


def _record(**changes: Any) -> dict[str, Any]:
    rec = record_of(result("sgd", 0, summary={"final_loss": 0.5},
                           curve=[{"step": 0, "elapsed_s": 0.0, "loss": 1.0}]))
    rec.update(changes)
    return rec


def _stem(rec: dict[str, Any]) -> str:
    return str(rec["cell_id"])


def _with_cell(**fields: Any) -> dict[str, Any]:
    rec = _record()
    rec["cell"] = {**rec["cell"], **fields}
    return rec


@pytest.mark.parametrize(("rec", "reason"), [
    ([1], "it holds a list, not an object"),
    ({k: v for k, v in _record().items() if k != "cell_id"}, "it has no 'cell_id'"),
    ({k: v for k, v in _record().items() if k != "key"}, "it has no 'key'"),
    ({k: v for k, v in _record().items() if k != "status"}, "it has no 'status'"),
    ({k: v for k, v in _record().items() if k != "cell"}, "it has no 'cell'"),
    (_record(key=3), "its 'key' is a number"),
    (_record(status=None), "its 'status' is null"),
    (_record(cell=[]), "its 'cell' is a list"),
    (_record(status="finished"),
     f"its status 'finished' is not one of {', '.join(STATUSES)}"),
    (_record(error=1), "its 'error' is a number, not a string"),
    (_record(traceback=[]), "its 'traceback' is a list, not a string"),
    (_record(summary=[]), "its 'summary' is a list, not an object"),
    (_record(artifacts="x"), "its 'artifacts' is a string, not an object"),
    (_record(summary={"final_loss": "low"}),
     "its summary's 'final_loss' is a string, not a number"),
    (_record(summary={"final_loss": True}),
     "its summary's 'final_loss' is a boolean, not a number"),
    (_record(summary={"data_source": 3}),
     "its summary's 'data_source' is a number, not a string"),
    (_record(summary={"accuracy": {"top1": 1}}), "its summary's 'accuracy' is an object"),
    (_record(summary={"accuracy": [1]}), "its summary's 'accuracy' is a list"),
    (_record(curve={}), "its 'curve' is an object, not a list"),
    (_record(curve=[3]), "its curve's point 0 is a number, not an object"),
    (_record(curve=[{"step": 0, "elapsed_s": 0}, {"step": 1}]),
     "its curve's point 1 is not step, elapsed_s and numbers"),
    (_record(curve=[{"elapsed_s": 0}]), "its curve's point 0 is not step, elapsed_s and numbers"),
    (_record(curve=[{"step": 0, "elapsed_s": 0, "loss": "x"}]),
     "its curve's point 0 is not step, elapsed_s and numbers"),
    (_with_cell(seed="0"), "its cell's 'seed' is a string"),
    (_with_cell(seed=True), "its cell's 'seed' is a boolean"),
    ({**_record(), "cell": {k: v for k, v in _record()["cell"].items() if k != "device"}},
     "its cell has no 'device'"),
    (_with_cell(params=3), "its cell's 'params' is not an object"),
    (_with_cell(hyper=[]), "its cell's 'hyper' is not an object"),
    (_with_cell(roles={"d": 1}), "its cell's 'roles' is not an object of objects"),
    (_with_cell(versions={"harness": 1}), "its cell's 'versions' is not an object of strings"),
    (_with_cell(params={"width": {"a": 1}}), "its cell's 'params' hold an object"),
    (_with_cell(params={"width": [1, {"a": 1}]}), "its cell's 'params' hold an object"),
    (_with_cell(roles={"d": {"hyper": {}}}),
     "its cell's role 'd' has no optimizer name or hyperparameters"),
    (_with_cell(roles={"d": {"optimizer": "sgd", "hyper": []}}),
     "its cell's role 'd' has no optimizer name or hyperparameters"),
    # the two a hand edit or a copied file leaves: a key that is not its cell's, and a record
    # filed under another cell's name
    (_record(key="0" * 16), "its key or cell_id is not that of its cell"),
    (_with_cell(seed=7), "its key or cell_id is not that of its cell"),
])
def test_each_reason_a_record_is_corrupt(rec: Any, reason: str, tmp_path: Path) -> None:
    stem = cell("sgd", 0).cell_id
    assert record_problem(rec, stem) == reason
    run = RunDirectory(tmp_path)
    run.cells_dir.mkdir(parents=True)
    path = run.cells_dir / f"{stem}.json"
    path.write_text(json.dumps(rec), "utf-8")
    good, corrupt = run.scan()
    assert good == [] and corrupt == [path] and run.corrupt_reasons == {path: reason}


def test_a_record_filed_under_the_wrong_cell(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path, [result("sgd", 0), result("sgd", 1)])
    cells = RunDirectory(run).cells_dir
    one = cells / f"{cell('sgd', 1).cell_id}.json"
    zero = cells / f"{cell('sgd', 0).cell_id}.json"
    one.write_text(zero.read_text("utf-8"), "utf-8")  # seed 0's record under seed 1's name
    assert record_problem(json.loads(one.read_text("utf-8")), one.stem) \
        == "it is the record of another cell than its file name says"
    directory = RunDirectory(run)
    records = directory.records()
    assert [r["cell"]["seed"] for r in records] == [0]
    err = capsys.readouterr().err
    assert err == (f"harness: warning: {one} is corrupt (it is the record of another cell "
                   "than its file name says); it is left out\n")
    directory.records()  # warned once per directory
    assert capsys.readouterr().err == ""


def test_unreadable_records_are_named(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    run.cells_dir.mkdir(parents=True)
    (run.cells_dir / "a.json").write_text("{", "utf-8")
    (run.cells_dir / "b.json").write_text("[" * 100_000 + "]" * 100_000, "utf-8")
    (run.cells_dir / "c.json").mkdir()
    (run.cells_dir / "notes.txt").write_text("not a record", "utf-8")
    _, corrupt = run.scan()
    reasons = run.corrupt_reasons
    assert [p.name for p in corrupt] == ["a.json", "b.json", "c.json"]
    assert reasons[run.cells_dir / "a.json"] == "it is not valid JSON"
    assert reasons[run.cells_dir / "b.json"] == "it is not valid JSON"
    assert reasons[run.cells_dir / "c.json"].startswith("it cannot be read (")
    assert RunDirectory(tmp_path / "none").scan() == ([], [])


def test_a_list_parameter_is_a_parameter() -> None:
    rec = record_of(result("sgd", 0))
    rec["cell"]["params"] = {"width": [8, 16], "act": "relu"}
    fixed = cell("sgd", 0, params=(("act", "relu"), ("width", (8, 16))))
    rec["cell_id"], rec["key"] = fixed.cell_id, fixed.key
    assert record_problem(rec, fixed.cell_id) is None


def test_conforms_known_answers() -> None:
    from typing import Any as A
    assert conforms(1, float) and conforms(1.5, float) and not conforms(True, float)
    assert conforms(1, int) and not conforms(1.0, int) and not conforms(False, int)
    assert conforms(True, bool) and not conforms(1, bool)
    assert conforms("p", Path) and not conforms(1, str)
    assert conforms(None, None) and conforms(None, type(None)) and not conforms(0, None)
    assert conforms(None, int | None) and not conforms("x", int | None)
    assert conforms([1, 2], list[int]) and not conforms([1, "x"], list[int])
    assert conforms([1, "x"], list) and not conforms((1,), list)
    assert conforms({"a": 1}, dict[str, int]) and not conforms({"a": "b"}, dict[str, int])
    assert not conforms({1: 1}, dict[str, int]) and conforms({1: "x"}, dict)
    assert not conforms([], dict) and conforms(object(), A) and conforms(object(), tuple)


def test_json_type_words() -> None:
    assert [json_type(v) for v in ({}, [], "", True, 1, 1.5, None, ())] == [
        "an object", "a list", "a string", "a boolean", "a number", "a number", "null", "?"]


def test_manifest_problems() -> None:
    assert manifest_problems([]) == [("", "a JSON object")]
    assert manifest_problems({"created": "now", "cells": [{}], "git": None}) == []
    assert manifest_problems({"created": 1, "cells": [1], "devices": {"cpu": 1},
                              "git": 3}) == [
        ("created", "a string"), ("cells", "a list of objects"),
        ("devices", "an object of strings"), ("git", "an object or null")]
    assert manifest_problems({"versions": {"plugins": []}}) == [
        ("versions", "an object whose plugins are an object")]
    assert manifest_problems({"versions": {"plugins": {}}}) == []


def test_write_json_stores_nan_as_null(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": [1.0, math.nan, (math.inf, 2)], "b": {"c": -math.inf}})
    assert path.read_text("utf-8") == (
        '{\n "a": [\n  1.0,\n  null,\n  [\n   null,\n   2\n  ]\n ],\n "b": {\n  "c": null\n }\n}')


def test_record_of_and_back(tmp_path: Path) -> None:
    r = result("sgd", 3, "diverged", {"final_loss": math.nan},
               curve=[{"step": 0, "elapsed_s": 0.0}], error="nan loss")
    rec = record_of(r)
    assert rec == {"cell_id": r.cell.cell_id, "key": r.cell.key, "cell": r.cell.to_dict(),
                   "status": "diverged", "error": "nan loss", "traceback": None,
                   "summary": {"final_loss": math.nan} if False else rec["summary"],
                   "curve": [{"step": 0, "elapsed_s": 0.0}], "artifacts": {}}
    assert math.isnan(rec["summary"]["final_loss"])
    run = RunDirectory(tmp_path)
    path = run.write_cell(r)
    assert path == tmp_path / "cells" / f"{r.cell.cell_id}.json"
    (back,), corrupt = run.scan()
    assert corrupt == [] and back["summary"] == {"final_loss": None}
    assert record_problem(back, r.cell.cell_id) is None


def test_the_manifest_as_far_as_it_can_be_read(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run = RunDirectory(tmp_path)
    assert run.manifest() == {}
    run.write_manifest({"created": "today", "cells": 3, "x": math.nan})
    assert run.manifest() == {"created": "today", "x": None}
    path = tmp_path / "manifest.json"
    assert capsys.readouterr().err == \
        f"harness: warning: {path}: 'cells' is not a list of objects; it is ignored\n"
    path.write_text("[1]", "utf-8")
    assert RunDirectory(tmp_path).manifest() == {}
    assert capsys.readouterr().err == \
        f"harness: warning: {path} holds a list, not a JSON object; it is ignored\n"
    path.write_text("{", "utf-8")
    assert RunDirectory(tmp_path).manifest() == {}
    assert capsys.readouterr().err == \
        f"harness: warning: {path} is not valid JSON; it is ignored\n"
    path.unlink()
    path.mkdir()
    assert RunDirectory(tmp_path).manifest() == {}
    assert capsys.readouterr().err.startswith(f"harness: warning: {path} cannot be read (")


def test_records_follow_the_manifests_cell_order(tmp_path: Path) -> None:
    results = [result("sgd", s) for s in range(4)]
    ids = [r.cell.cell_id for r in results]
    write_run(tmp_path, results, manifest={"cell_order": [ids[2], ids[0], ids[3]]})
    # in the grid's order, and a record no longer in the grid is left out
    assert [r["cell_id"] for r in RunDirectory(tmp_path).records()] == [ids[2], ids[0], ids[3]]


def test_summary_frame_known_answer() -> None:
    rec = record_of(result("sgd", 2, summary={
        "final_loss": 0.25, "samples_per_s": None, "data_source": None, "steps_done": 40,
        "accuracy": 0.9, "extra_count": None}, curve=[]))
    rec["cell"]["params"] = {"width": [8, 16], "final_loss": 3}
    rec["cell"]["hyper"] = {"lr": 0.1, "betas": [0.9, 0.99]}
    rec["key"] = rec["cell_id"] = "x"
    frame = summary_frame([rec])
    row = frame.iloc[0]
    assert list(frame.columns[:len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    assert (row["model"], row["optimizer"], row["device"], row["seed"], row["status"],
            row["steps"], row["batch_size"]) == ("toy", "sgd", "cpu", 2, "ok", 100, 10)
    assert row["final_loss"] == 0.25 and math.isnan(row["samples_per_s"])
    assert row["data_source"] is None and row["steps_done"] == 40
    assert row["accuracy"] == 0.9 and math.isnan(row["extra_count"])
    # a parameter named like a summary column is param.NAME; lists are written as JSON
    assert row["width"] == "[8,16]" and row["param.final_loss"] == 3
    assert row["hp.lr"] == 0.1 and row["hp.betas"] == "[0.9,0.99]"
    assert row["params"] == "final_loss=3,width=[8,16]"
    assert row["hyperparameters"] == "betas=[0.9,0.99],lr=0.1"
    assert row["error"] is None and row["cell_id"] == "x"
    assert list(frame.columns[-2:]) == ["error", "cell_id"]
    assert summary_frame([record_of(result("sgd", 0))]).iloc[0]["steps_done"] == 0
    empty = summary_frame([])
    assert list(empty.columns) == list(SUMMARY_COLUMNS) and empty.empty


def test_curves_frame_known_answer() -> None:
    rec = record_of(result("adam", 1, curve=[{"step": 0, "elapsed_s": 0.0, "loss": None},
                                              {"step": 10, "elapsed_s": 0.5, "loss": 0.3}]))
    frame = curves_frame([rec, record_of(result("sgd", 0))])
    assert list(frame.columns) == ["cell_id", "model", "optimizer", "device", "seed", "step",
                                   "elapsed_s", "loss"]
    assert frame["step"].tolist() == [0, 10] and frame["optimizer"].tolist() == ["adam"] * 2
    assert frame["seed"].tolist() == [1, 1] and frame["model"].tolist() == ["toy"] * 2
    assert frame["device"].tolist() == ["cpu"] * 2 and frame["cell_id"].iloc[0] == rec["cell_id"]
    assert math.isnan(frame["loss"].iloc[0]) and frame["loss"].iloc[1] == 0.3
    empty = curves_frame([])
    assert list(empty.columns) == ["cell_id", "model", "optimizer", "device", "seed", "step",
                                   "elapsed_s"] and empty.empty


def test_write_tables_writes_summary_and_curves(tmp_path: Path) -> None:
    write_run(tmp_path, [
        result("sgd", 0, summary={"final_loss": 0.5, "data_source": "synthetic",
                                  "note": "a", "flag": True},
               curve=[{"step": 0, "elapsed_s": 0.0, "loss": 1.0},
                      {"step": 5, "elapsed_s": 0.1, "loss": 0.5}]),
        result("sgd", 1, "diverged", summary={"final_loss": None, "note": 3},
               curve=[{"step": 0, "elapsed_s": 0.0, "loss": None}], error="nan"),
        result("sgd", 2, "timeout")])
    summary, curves = RunDirectory(tmp_path).write_tables()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cells", "curves.parquet", "manifest.json", "summary.csv", "summary.parquet"]
    back = pd.read_parquet(tmp_path / "curves.parquet")
    assert back["step"].tolist() == [0, 5, 0] and back["loss"].tolist()[:2] == [1.0, 0.5]
    # no index column in the files, and pandas' metadata names none
    for name in ("summary.parquet", "curves.parquet"):
        schema = pq.read_schema(tmp_path / name)
        assert not [c for c in schema.names if c.startswith("__index")]
        assert schema.pandas_metadata["index_columns"] == []
    assert math.isnan(back["loss"].iloc[2]) and len(curves) == 3
    s = pd.read_parquet(tmp_path / "summary.parquet")
    # a column of mixed types is written as text, a missing value as null
    assert s["note"].tolist()[:2] == ["a", "3"] and pd.isna(s["note"].iloc[2])
    assert s["status"].tolist() == ["ok", "diverged", "timeout"]
    # one type: kept as it is, not made text
    assert s["flag"].iloc[0] is True or s["flag"].iloc[0] is np.True_
    assert s["flag"].isna().tolist() == [False, True, True]
    assert pd.isna(s["error"].iloc[0]) and s["error"].iloc[1] == "nan"
    assert s["data_source"].iloc[0] == "synthetic" and pd.isna(s["data_source"].iloc[1])
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert csv["seed"].tolist() == [0, 1, 2] and list(csv.columns) == list(summary.columns)
    # a part of a table (its index not 0..n-1) is written as it is
    write_tables(tmp_path, summary.iloc[[1]], curves.iloc[[2]])
    part = pd.read_parquet(tmp_path / "summary.parquet")
    assert part["note"].tolist() == [3] and part["seed"].tolist() == [1]
