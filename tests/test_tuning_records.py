"""The tuning record contract (docs/tuning.md): a tuning cell's key holds its ``tune``
object, and the summary's ``tune_*`` columns are derived from the records alone."""

from __future__ import annotations

import math
from typing import Any

from harness.cell import Cell
from harness.outcome import CellResult, Status
from harness.results import record_problem, summary_frame
from harness.results.records import record_of


def _cell(seed: int, lr: float, tune: dict[str, Any]) -> Cell:
    return Cell(problem="regression", optimizer="sgd", device="cpu", seed=seed, steps=10,
                batch_size=8, params=(("activation", "relu"),), hyper=(("lr", lr),),
                tune=tuple(sorted(tune.items())))


def _record(cell: Cell, val: float | None, status: Status = Status.OK) -> dict[str, Any]:
    summary = {"val_loss": val, "final_loss": 1.0, "flops_per_step": 100.0, "steps_done": 10}
    curve = ({"step": 0, "elapsed_s": 0.0}, {"step": 10, "elapsed_s": 0.5})
    return record_of(CellResult(cell, status, summary, curve))


def test_a_cell_outside_tuning_keeps_its_key() -> None:
    plain = _cell(0, 0.1, {})
    assert "tune" not in plain.to_dict()
    tuned = _cell(0, 0.1, {"phase": "trial", "trial": 0, "metric": "val_loss"})
    assert tuned.key != plain.key
    assert Cell.from_dict(tuned.to_dict()) == tuned
    assert "trial 0" in tuned.describe()


def test_tune_columns_are_derived_from_the_records() -> None:
    trial = {"phase": "trial", "metric": "val_loss"}
    records = [
        _record(_cell(0, 0.1, {**trial, "trial": 0}), 0.5),
        _record(_cell(1, 0.1, {**trial, "trial": 0}), 0.3),
        _record(_cell(0, 1.0, {**trial, "trial": 1}), None, Status.DIVERGED),
        _record(_cell(1, 1.0, {**trial, "trial": 1}), 0.2),
        _record(_cell(7, 0.1, {"phase": "final", "trial": 0, "metric": "val_loss",
                                "edge": "lr=low"}), 0.4),
        _record(Cell(problem="regression", optimizer="sgd", device="cpu", seed=0, steps=10,
                     batch_size=8), 0.9),
    ]
    for rec in records:
        assert record_problem(rec, rec["cell_id"]) is None
    s = summary_frame(records)
    assert list(s["tune_phase"][:5]) == ["trial"] * 4 + ["final"]
    assert list(s["tune_trial"][:5]) == [0, 0, 1, 1, 0]
    assert s["tune_value"][0] == s["tune_value"][1] == 0.4  # the mean over its seeds
    assert math.isnan(s["tune_value"][2])  # a diverged seed: no value
    assert list(s["tune_selected"][:5]) == [True, True, False, False, True]
    assert s["tune_split"][0] == "validation" and s["tune_edge"][4] == "lr=low"
    assert s["tune_study"][0] == "regression activation=relu sgd cpu"
    assert s["train_s"][0] == 0.5 and s["train_flops"][0] == 1000.0
    assert s["tune_phase"].isna()[5]  # outside tuning: empty
