"""``harness report DIR [DIR ...]`` and the metric's direction in the report (issue 22).

Real runs where the point is what ``harness run`` writes; constructed records where the
point is one rule (two runs with the same seed as different cells, a direction the
metric's name would get wrong).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.cell import Cell
from harness.cli import main
from harness.errors import UsageError
from harness.outcome import CellResult
from harness.report import ReportRun, build_report
from harness.report.runs import load_runs, run_names
from harness.report.tables import ranking
from harness.results import RunDirectory


def _run(out: Path, *args: str) -> Path:
    assert main(["run", *args, "--workers", "0", "--out", str(out), "--quiet",
                 "--fail-on", "none"]) == 0
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A default run (each optimizer at its default lr 0.01) and an lr sweep whose lr=0.01
    cells are the default run's cells exactly."""
    base = tmp_path_factory.mktemp("runs")
    default = _run(base / "default", "-m", "regression", "-o", "sgd,adam", "-s", "0-2",
                   "--steps", "30")
    sweep = _run(base / "sweep", "-m", "regression", "-o", "sgd,adam", "-s", "0-2",
                 "--steps", "30", "--set", "lr=0.001,0.01")
    return default, sweep


def _text(index: Path) -> str:
    page = index.read_text("utf-8")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_two_runs_on_one_page(two_runs: tuple[Path, Path],
                              capsys: pytest.CaptureFixture[str]) -> None:
    default, sweep = two_runs
    assert main(["report", str(default), str(sweep), "--workers", "1"]) == 0
    index = default / "report-combined" / "index.html"
    assert f"report written to {index}" in capsys.readouterr().out
    text = _text(index)
    assert "Benchmark report: default + sweep" in text
    assert "Run default" in text and "Run sweep" in text
    assert "--set lr=0.001,0.01" in text
    # the six lr=0.01 cells are in both runs: counted once
    assert "12 recorded, each counted once (6 identical cell(s)" in text
    table = pd.read_csv(index.parent / "ranking.csv")
    assert sorted(table["arm"]) == ["adam (lr=0.001)", "adam (lr=0.01)", "sgd (lr=0.001)",
                                    "sgd (lr=0.01)"]
    assert (table["seeds_ok"] == 3).all()  # no seed counted twice
    run = load_runs([default, sweep])
    assert [src.name for src in run.runs] == ["default", "sweep"]
    assert len(run.runs[0].cells & run.runs[1].cells) == 6
    assert set(run.summary["run"]) == {"default", "sweep"}
    assert (run.summary["run"] == "default").sum() == 6  # the first run given holds them
    # one run: the page is the one it always was (no run lines, the folder's name)
    single = build_report(default, workers=1)
    assert single == default / "report" / "index.html"
    one = _text(single)
    assert "Benchmark report: default " in one and "Run default" not in one
    assert "recorded of 6" in one


def test_one_run_page_is_unchanged_by_the_list_form(two_runs: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    default, _ = two_runs
    a = build_report(default, out_dir=tmp_path / "a", workers=1).read_text("utf-8")
    b = build_report([default], out_dir=tmp_path / "b", workers=1).read_text("utf-8")
    assert a == b


def test_bad_run_lists_are_one_line(two_runs: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    default, _ = two_runs
    assert main(["report", str(default), str(default)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is given twice" in err
    assert main(["report", str(default), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results directory" in err
    with pytest.raises(UsageError, match="no results directory given"):
        load_runs([])


def _cell(root: Path, optimizer: str, seed: int, value: float, *, harness: str = "0.1.0",
          extra: dict[str, Any] | None = None) -> None:
    cell = Cell(problem="toy", optimizer=optimizer, device="cpu", seed=seed, steps=10,
                batch_size=8, versions=(("harness", harness),))
    RunDirectory(root).write_cell(CellResult(cell=cell, status="ok", summary={
        "final_loss": value, **(extra or {})}))


def test_the_same_seed_as_different_cells_is_told_apart_by_run(tmp_path: Path) -> None:
    """adam seed 0 in two runs of different code versions: two arms, named by run."""
    for seed in (0, 1, 2):
        _cell(tmp_path / "old", "adam", seed, 0.5 + seed, harness="0.0.9")
        _cell(tmp_path / "old", "sgd", seed, 0.9 + seed, harness="0.0.9")
        _cell(tmp_path / "new", "adam", seed, 0.1 + seed)
    run = load_runs([tmp_path / "old", tmp_path / "new"])
    assert set(run.summary["arm"]) == {"adam [run: old]", "adam [run: new]", "sgd"}
    table = ranking(run).set_index("arm")
    assert table.loc["adam [run: new]", "rank"] == 1
    assert table.loc["adam [run: old]", "pairs"] == 3
    # the plugins' view of the cells carries the same labels
    assert {c.arm for c in run.cells("toy")} == set(run.summary["arm"])


def test_run_names_tell_folders_of_one_name_apart(tmp_path: Path) -> None:
    assert run_names([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == ["a/run", "b/run"]
    assert run_names([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]


def test_ranking_follows_the_recorded_direction(tmp_path: Path) -> None:
    """``quality``'s name says nothing; the cells' metric_directions say higher is better."""
    for optimizer, values in (("sgd", (0.9, 0.8, 0.85)), ("adam", (0.2, 0.3, 0.25))):
        for seed, v in enumerate(values):
            _cell(tmp_path, optimizer, seed, 0.1, extra={
                "quality": v, "target_metric": "quality", "target_threshold": 0.95,
                "metric_directions": "quality=max,val_quality=max"})
    run = ReportRun.load(tmp_path)
    assert run.direction("toy", "quality") == "max"
    assert run.direction("toy", "val_quality") == "max"
    assert run.direction("toy", "final_loss") == "min"
    assert run.final_metric("toy") == ("quality", "max")
    table = ranking(run).set_index("arm")
    assert table.loc["sgd", "rank"] == 1 and table.loc["sgd", "better"] == "max"


def test_too_few_seeds_to_separate_is_said_not_a_bare_p(tmp_path: Path) -> None:
    """Three seeds cannot reach 0.05 (floor 0.25); seven seeds of two arms can, and seven
    seeds with three comparisons can too (3 x 2/128 = 0.047), six with three cannot."""
    from harness.report.display import ranking_display

    def build(root: Path, arms: dict[str, float], seeds: int) -> pd.DataFrame:
        for optimizer, shift in arms.items():
            for seed in range(seeds):
                _cell(root, optimizer, seed, shift + 0.01 * seed * seed)
        return ranking(ReportRun.load(root))

    few = build(tmp_path / "few", {"adam": 0.1, "sgd": 0.5}, 3)
    row = few.set_index("arm").loc["sgd"]
    assert row["min_p"] == pytest.approx(0.25) and not row["separable"]
    shown = ranking_display(few).set_index("optimizer")["p (Holm); smallest possible"]
    assert shown["sgd"] == ("too few seeds to separate these arms: with 3 pairs p ≥ 0.25 > "
                            "0.05 (needs 6 seeds)")
    enough = build(tmp_path / "enough", {"adam": 0.1, "sgd": 0.5}, 7)
    row = enough.set_index("arm").loc["sgd"]
    assert row["separable"] and row["p_value"] == pytest.approx(2 / 128)
    shown = ranking_display(enough).set_index("optimizer")["p (Holm); smallest possible"]
    assert shown["sgd"] == "0.0156 (0.0156); min 0.016"
    family = build(tmp_path / "family", {"adam": 0.1, "sgd": 0.5, "rmsprop": 0.6,
                                         "lion": 0.7}, 6)
    assert list(family["min_p_holm"].dropna()) == pytest.approx([3 / 32] * 3)
    assert not family["separable"].any()
    shown = ranking_display(family).set_index("optimizer")["p (Holm); smallest possible"]
    assert shown["sgd"].startswith("too few seeds to separate these arms after Holm's "
                                   "correction for 3 comparisons: p ≥ 0.0938 > 0.05 (needs 7 "
                                   "seeds; unadjusted p 0.0312)")
