"""The report of a real tuning run (``harness tune``), alone and beside a default run
(issue 22): the tuned ranking over the final seeds, the selection the tuner made, the
sensitivity figure, the cost with what pruning saved, the configurations to paste back."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.report import build_report
from harness.report.runs import load_runs
from harness.report.sensitivity import scales, sensitivity_figure
from harness.report.sweep import best_configs_toml, sweep


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tuned")
    common = ["-m", "regression", "-o", "sgd,adam", "--steps", "40", "--workers", "0",
              "--quiet", "--fail-on", "none"]
    assert main(["run", *common, "-s", "0-2", "--out", str(base / "default")]) == 0
    assert main(["tune", *common, "--trials", "4", "--final-seeds", "3", "--prune", "halving",
                 "--out", str(base / "tuned")]) == 0
    return base / "default", base / "tuned"


def _text(index: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", index.read_text("utf-8")))


def test_tuned_report_ranks_final_seeds_and_keeps_the_tuners_selection(
        runs: tuple[Path, Path]) -> None:
    _, tuned = runs
    index = build_report(tuned, workers=2)
    folder = index.parent
    summary = pd.read_parquet(tuned / "summary.parquet")
    finals = summary[summary["tune_phase"] == "final"]
    ranking = pd.read_csv(folder / "ranking.csv")
    assert sorted(ranking["arm"]) == ["adam", "sgd"]
    assert (ranking["seeds_ok"] == 3).all()  # the final seeds, no trial seed
    for _, row in ranking.iterrows():
        values = finals[finals["optimizer"] == row["arm"]]["test_loss"]
        assert row["mean"] == pytest.approx(values.mean())
    # the selection is the tuner's, pasted back in the same form as its best_configs.csv
    mine = pd.read_csv(folder / "best_configs.csv").set_index("optimizer")
    theirs = pd.read_csv(tuned / "best_configs.csv").set_index("optimizer")
    for optimizer in ("sgd", "adam"):
        assert mine.loc[optimizer, "grid"] == theirs.loc[optimizer, "grid"]
        assert mine.loc[optimizer, "value"] == pytest.approx(theirs.loc[optimizer, "value"],
                                                             rel=1e-5)
        assert mine.loc[optimizer, "final_seeds"] == 3
    pasted = tomllib.loads((folder / "best_configs.toml").read_text("utf-8"))
    assert set(pasted["problems"]["regression"]) == {"sgd", "adam"}
    text = _text(index)
    for words in ("Tuning", "Configurations tried", "Sensitivity: regression",
                  "on seeds no trial used", "tuning trial(s) the tuner"):
        assert words in text, words
    assert "cell(s) did not finish ok" not in text  # pruned trials are no failures


def test_tuning_cost_and_what_pruning_saved(runs: tuple[Path, Path]) -> None:
    _, tuned = runs
    found = sweep(load_runs([tuned]))
    assert found is not None and found.tuned
    summary = pd.read_parquet(tuned / "summary.parquet")
    trials = summary[summary["tune_phase"] == "trial"]
    pruned = trials[trials["status"] == "pruned"]
    assert len(pruned) > 0, "the halving pruner stopped no trial: the test proves nothing"
    configs = found.configs
    assert len(configs) == len(trials) == 8
    assert int(configs["pruned"].sum()) == len(pruned)
    assert configs.loc[configs["pruned"], "value"].isna().all()
    saved = (pruned["flops_per_step"] * (pruned["steps"] - pruned["steps_done"])).sum()
    assert configs["saved_flops"].sum() == pytest.approx(saved)
    assert configs["flops"].sum() == pytest.approx(
        (trials["flops_per_step"] * trials["steps_done"]).sum())
    assert configs["train_s"].sum() == pytest.approx(trials["train_s"].sum())
    # one point per trial; the log space of lr (tuning.json) gives a log axis
    run = load_runs([tuned])
    assert scales(run)[("regression", "sgd", "lr")] == "log"
    drawn = sensitivity_figure(configs, "regression", {"sgd": "C0", "adam": "C1"},
                               scales(run), "regression")
    assert drawn is not None
    figure, keys = drawn
    assert keys == ["lr"] and figure.axes[0].get_xscale() == "log"
    starred = [c for c in figure.axes[0].collections if c.get_paths()
               and c.get_label() == "selected"]
    assert len(starred) == 1  # the legend's; the second optimizer's star has no label


def test_tuned_schedule_parameters_are_drawn_and_pasted(tmp_path: Path) -> None:
    """A study tuning the step schedule's ``every`` (a linear space) and ``gamma`` (a log
    space) with the learning rate: a panel for each, on its own space's scale, and the
    grid-file lines give them as ``[problems.NAME]`` spells a schedule's parameters."""
    out = tmp_path / "t"
    assert main(["tune", "-m", "regression", "-o", "sgd", "--steps", "30", "--workers", "0",
                 "--quiet", "--set", "schedule=step", "--tune-params", "lr,every,gamma",
                 "--trials", "4", "--final-seeds", "1", "--out", str(out)]) == 0
    run = load_runs([out])
    found = sweep(run)
    assert found is not None
    assert {k: scales(run)[("regression", "sgd", k)] for k in ("lr", "step.every",
                                                               "step.gamma")} == \
        {"lr": "log", "step.every": "linear", "step.gamma": "log"}
    drawn = sensitivity_figure(found.configs, "regression", {"sgd": "C0"}, scales(run),
                               "regression")
    assert drawn is not None
    figure, keys = drawn
    assert keys == ["lr", "step.every", "step.gamma"]
    assert [ax.get_xscale() for ax in figure.axes[:3]] == ["log", "linear", "log"]
    (study,) = json.loads((out / "tuning.json").read_text("utf-8"))["studies"]
    selected = study["selected"]["hyper"]
    (choice,) = found.choices.to_dict("records")
    assert choice["grid"] == pd.read_csv(out / "best_configs.csv")["grid"][0]
    pasted = tomllib.loads(best_configs_toml(found.choices))["problems"]["regression"]
    assert pasted == {"sgd": {"lr": selected["lr"]}, "schedule": "step",
                      "step": {"every": selected["every"], "gamma": selected["gamma"]}}


def test_defaults_beside_tuned(runs: tuple[Path, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    default, tuned = runs
    assert main(["report", str(default), str(tuned), "--out", str(tmp_path / "r"),
                 "--workers", "1"]) == 0
    capsys.readouterr()
    folder = tmp_path / "r"
    beside = pd.read_csv(folder / "defaults_vs_tuned.csv").set_index("optimizer")
    base = pd.read_parquet(default / "summary.parquet")
    for optimizer in ("sgd", "adam"):
        mean = base[base["optimizer"] == optimizer]["test_loss"].mean()
        assert beside.loc[optimizer, "default mean [95% CI]"].startswith(f"{mean:.4g}")
    text = _text(folder / "index.html")
    assert "Defaults against tuned" in text and "Run default" in text and "Run tuned" in text
    listed = json.loads((folder / ".harness-figures.json").read_text())
    assert sorted(listed) == sorted(p.name for p in folder.glob("fig-*.png"))


def test_tuned_report_in_headless_chromium(runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    from tests.test_report import _browser_check, _need_chromium, _screenshot

    _need_chromium()
    default, tuned = runs
    index = build_report([default, tuned], out_dir=tmp_path / "page", workers=2)
    try:
        result = _browser_check(index, tmp_path)
        shot, console = _screenshot(index, tmp_path, "report-tuned.png")
    finally:
        for profile in ("profile-check", "profile-shot"):
            shutil.rmtree(tmp_path / profile, ignore_errors=True)
    assert len(result["images"]) == len(list(index.parent.glob("fig-*.png"))) > 0, shot
    assert all(width > 0 for _, width in result["images"]), result["images"]
    assert result["errors"] == [] and result["alerts"] == [], shot
    assert result["console"] == [] and console == [], (result["console"], console)
    for words in ("Tuning", "Sensitivity: regression", "Defaults against tuned",
                  "FLOPs saved by pruning", "[problems.regression]"):
        assert words in result["text"], words
