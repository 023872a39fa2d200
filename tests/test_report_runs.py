"""``harness report DIR [DIR ...]`` and the metric's direction in the report (issue 22).

Real runs where the point is what ``harness run`` writes; constructed records where the
point is one rule (two runs with the same seed as different cells, a direction the
metric's name would get wrong).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.cell import Cell
from harness.cli import main
from harness.errors import UsageError
from harness.outcome import CellResult
from harness.plugins import get_host
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
    # the lr sweep is grouped per optimizer; each configuration has its 3 seeds once
    configs = pd.read_csv(index.parent / "configurations.csv")
    assert sorted(configs["arm"]) == ["adam (lr=0.001)", "adam (lr=0.01)", "sgd (lr=0.001)",
                                      "sgd (lr=0.01)"]
    assert (configs["seeds"] == 3).all()  # no seed counted twice
    table = pd.read_csv(index.parent / "ranking.csv")
    assert sorted(table["arm"]) == ["adam", "sgd"] and (table["seeds_ok"] == 3).all()
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
    from harness.report.sweep import sweep

    assert sweep(run) is None  # two runs of one configuration are no sweep


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


# -- a sweep is not N arms ------------------------------------------------------------------
def _swept(root: Path, optimizer: str, lr: float, seed: int, val: float, test: float,
           *, status: str = "ok", better: str = "min", metric: str = "loss") -> None:
    cell = Cell(problem="toy", optimizer=optimizer, device="cpu", seed=seed, steps=10,
                batch_size=8, hyper=(("lr", lr),))
    RunDirectory(root).write_cell(CellResult(cell=cell, status=status, summary={
        "final_loss": 0.5, f"val_{metric}": val, f"test_{metric}": test,
        "target_metric": f"test_{metric}", "target_threshold": 0.0 if better == "min" else 2.0,
        "metric_directions": f"test_{metric}={better},val_{metric}={better}",
        "validation_metric": f"val_{metric}"}))


def test_a_sweep_selects_per_optimizer_on_validation_never_test(tmp_path: Path) -> None:
    """lr 0.1 is best on validation, lr 0.01 on test: 0.1 is selected; sgd's lr 1.0 has
    the best validation values but a diverged seed, so it has no value."""
    from harness.report.sweep import best_configs_toml, sweep

    for seed in range(3):
        for lr, val, test in ((0.001, 0.9, 0.9), (0.01, 0.5, 0.1), (0.1, 0.3, 0.4)):
            _swept(tmp_path, "adam", lr, seed, val + 0.01 * seed, test + 0.01 * seed)
        for lr, val in ((0.01, 0.6), (0.1, 0.5), (1.0, 0.1)):
            _swept(tmp_path, "sgd", lr, seed, val, val,
                   status="diverged" if (lr, seed) == (1.0, 2) else "ok")
    run = ReportRun.load(tmp_path)
    found = sweep(run)
    assert found is not None and not found.tuned
    choices = found.choices.set_index("optimizer")
    assert choices.loc["adam", "configuration"] == "adam (lr=0.1)"
    assert choices.loc["adam", "value"] == pytest.approx(0.31)  # mean of 0.30, 0.31, 0.32
    assert choices.loc["adam", "metric"] == "val_loss"
    assert choices.loc["adam", "edge"] == "lr=high"
    assert choices.loc["sgd", "configuration"] == "sgd (lr=0.1)"
    assert choices.loc["sgd", "edge"] == ""
    assert choices.loc["adam", "configurations"] == 3
    configs = found.configs.set_index("arm")
    assert configs.loc["sgd (lr=1.0)", "failed"] and pd.isna(configs.loc["sgd (lr=1.0)", "value"])
    # the view: one arm per optimizer, its seeds the selected configuration's
    assert sorted(found.view.arms()) == ["adam", "sgd"]
    assert len(found.view.summary) == 6
    table = ranking(found.view).set_index("arm")
    assert table.loc["adam", "mean"] == pytest.approx(0.41)  # test_loss of lr 0.1
    import tomllib

    pasted = tomllib.loads(best_configs_toml(found.choices))
    assert pasted == {"problems": {"toy": {"adam": {"lr": 0.1}, "sgd": {"lr": 0.1}}}}


def test_a_sweep_selects_in_the_metrics_direction(tmp_path: Path) -> None:
    from harness.report.sweep import sweep

    for seed in range(2):
        for lr, acc in ((0.01, 0.7), (0.1, 0.9), (1.0, 0.8)):
            _swept(tmp_path, "adam", lr, seed, acc, acc, better="max", metric="accuracy")
    found = sweep(ReportRun.load(tmp_path))
    assert found is not None
    (choice,) = found.choices.to_dict("records")
    assert choice["configuration"] == "adam (lr=0.1)" and choice["better"] == "max"
    assert choice["edge"] == ""


def test_no_sweep_leaves_the_page_as_it_was(two_runs: tuple[Path, Path]) -> None:
    from harness.report.sweep import sweep

    default, _ = two_runs
    assert sweep(ReportRun.load(default)) is None
    text = _text(default / "report" / "index.html") if (default / "report").exists() \
        else _text(build_report(default, workers=1))
    assert "Configurations tried" not in text and "Sweeps" not in text


def test_sweep_report_groups_arms_and_sets_defaults_beside(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    from harness.report import figures as F
    from harness.report.sweep import sweep

    default, swept = two_runs
    index = build_report([default, swept], out_dir=tmp_path / "r", workers=2)
    folder = index.parent
    text = _text(index)
    for words in ("Sweeps", "Configurations tried", "Sensitivity: regression",
                  "Cost of the search per optimizer", "Defaults against tuned",
                  "never the test metric", "[problems.regression]"):
        assert words in text, words
    table = pd.read_csv(folder / "ranking.csv")
    assert sorted(table["arm"]) == ["adam", "sgd"]
    best = pd.read_csv(folder / "best_configs.csv").set_index("optimizer")
    summary = pd.read_parquet(swept / "summary.parquet")
    for optimizer in ("sgd", "adam"):
        means = summary[summary["optimizer"] == optimizer].groupby("hyperparameters")[
            "val_loss"].mean()
        assert best.loc[optimizer, "hyperparameters"] in means.idxmin()  # "lr=0.01" etc.
        assert best.loc[optimizer, "value"] == pytest.approx(means.min())
    assert len(pd.read_csv(folder / "configurations.csv")) == 4
    beside = pd.read_csv(folder / "defaults_vs_tuned.csv")
    assert sorted(beside["optimizer"]) == ["adam", "sgd"]
    assert beside["default rank"].notna().all() and beside["tuned rank"].notna().all()
    found = sweep(load_runs([default, swept]))
    assert found is not None
    figure = F.convergence_figure(found.view, "regression", F.arm_palette(found.view.arms()))
    assert figure is not None
    legend = figure[0].axes[0].get_legend()
    assert legend is not None
    # one line per optimizer, not one per configuration
    assert sorted(t.get_text() for t in legend.get_texts()) == ["adam (n=3)", "sgd (n=3)"]
    import json

    listed = json.loads((folder / ".harness-figures.json").read_text())
    assert any("sensitivity-regression" in n for n in listed)
    assert sorted(listed) == sorted(p.name for p in folder.glob("fig-*.png"))


def test_combined_sweep_report_in_headless_chromium(two_runs: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    """The combined page with its sweep sections loads every figure, offline, with no
    console message, and shows the new sections."""
    from tests.test_report import _browser_check, _need_chromium, _screenshot

    _need_chromium()
    default, swept = two_runs
    index = build_report([default, swept], out_dir=tmp_path / "page", workers=1)
    try:
        result = _browser_check(index, tmp_path)
        shot, console = _screenshot(index, tmp_path, "report-combined-sweep.png")
    finally:
        for profile in ("profile-check", "profile-shot"):
            shutil.rmtree(tmp_path / profile, ignore_errors=True)
    n_figs = len(list(index.parent.glob("fig-*.png")))
    assert len(result["images"]) == n_figs > 0, shot
    assert all(width > 0 for _, width in result["images"]), result["images"]
    assert result["errors"] == [] and result["alerts"] == [], shot
    assert result["console"] == [] and console == [], (result["console"], console)
    for words in ("Sweeps", "Configurations tried", "Defaults against tuned",
                  "too few seeds to separate these arms", "Run default", "Run sweep"):
        assert words in result["text"], words


def _configured(root: Path, problem: str, optimizer: str, lr: float, seed: int, val: float,
                status: str = "ok") -> None:
    cell = Cell(problem=problem, optimizer=optimizer, device="cpu", seed=seed, steps=10,
                batch_size=8, hyper=(("lr", lr),))
    RunDirectory(root).write_cell(CellResult(cell=cell, status=status, summary={
        "final_loss": val, "val_loss": val, "test_loss": val, "validation_metric": "val_loss",
        "metric_directions": "test_loss=min,val_loss=min"},
        curve=({"step": 5, "elapsed_s": 0.1, "loss": 1.0}, {"step": 10, "elapsed_s": 0.2,
                                                            "loss": val})))


def test_settings_per_problem_rank_under_the_optimizers_name(tmp_path: Path) -> None:
    """adam at lr 0.1 on one problem and 0.01 on another (a pasted-back configuration):
    one optimizer across problems, no selection made, the settings said."""
    from harness.report.sweep import sweep

    for seed in range(3):
        _configured(tmp_path, "left", "adam", 0.1, seed, 0.2 + seed)
        _configured(tmp_path, "right", "adam", 0.01, seed, 0.3 + seed)
        for problem in ("left", "right"):
            _configured(tmp_path, problem, "sgd", 0.05, seed, 0.5 + seed)
    run = ReportRun.load(tmp_path)
    assert sorted(run.arms()) == ["adam (lr=0.01)", "adam (lr=0.1)", "sgd"]
    found = sweep(run)
    assert found is not None and not found.searched
    assert sorted(found.view.arms()) == ["adam", "sgd"] and len(found.view.summary) == 12
    index = build_report(tmp_path, workers=1)
    text = _text(index)
    assert "Settings on this problem" in text and "adam (lr=0.1)" in text
    assert "Sweeps" not in text and not (index.parent / "best_configs.csv").exists()
    scores = pd.read_csv(index.parent / "ranking.csv")
    assert sorted(set(scores["arm"])) == ["adam", "sgd"]


def test_a_sweep_whose_every_configuration_failed_a_seed_still_ranks_one(
        tmp_path: Path) -> None:
    """No configuration has a value: the one with the fewest failed seeds is ranked (and
    ranks after the optimizers without a failure), never dropped from the page."""
    from harness.report.sweep import sweep

    for seed in range(3):
        _configured(tmp_path, "toy", "adam", 0.1, seed, 0.2,
                    status="diverged" if seed < 2 else "ok")
        _configured(tmp_path, "toy", "adam", 1.0, seed, 0.4,
                    status="diverged" if seed == 0 else "ok")
        _configured(tmp_path, "toy", "sgd", 0.05, seed, 0.5 + seed)
        _configured(tmp_path, "toy", "sgd", 0.5, seed, 0.6 + seed)
    found = sweep(ReportRun.load(tmp_path))
    assert found is not None
    choice = found.choices.set_index("optimizer").loc["adam"]
    assert choice["configuration"].startswith("adam (lr=1.0) (no configuration finished ok")
    assert pd.isna(choice["value"]) and choice["edge"] == ""
    table = ranking(found.view).set_index("arm")
    assert table.loc["sgd", "rank"] == 1 and table.loc["adam", "rank"] == 2
    assert table.loc["adam", "seeds_failed"] == 1


def test_descriptions_come_from_the_run_else_from_the_installed_problem(
        two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A run records its problems' descriptions, so a report reads them without the
    plugins' registration (which imports torch); a run recorded before that gets the
    installed problem's."""
    installed = get_host().problems.get("regression").description
    run = shutil.copytree(two_runs[0], tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text("utf-8"))
    assert manifest["problems"] == {"regression": {"description": installed}}
    manifest["problems"]["regression"]["description"] = "as the run recorded it"
    (run / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    assert ReportRun.load(run, get_host()).descriptions == {
        "regression": "as the run recorded it"}
    del manifest["problems"]
    (run / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    assert ReportRun.load(run, get_host()).descriptions == {"regression": installed}
    assert ReportRun.load(run).descriptions == {}
