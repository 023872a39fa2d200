"""The throughput gate of ``harness compare`` (:mod:`harness.report.gate`): a regression only
when significant given both runs' noise, beyond a minimum effect, and not explained by the
machine; inconclusive (never a failure) otherwise.

Known answers on hand-made samples first, then real runs: a CPU-burning process alongside
the new run must never read "regressed"; a plugin whose step sleeps must.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import shutil
from pathlib import Path
from typing import Any

import pytest
import scipy.stats

from harness.cli import main
from harness.report.compare import Thresholds, compare_runs
from harness.report.gate import GateSettings, Speed, judge, load_ratio, min_p, parse_rates
from tests.helpers import run_cli


def _speed(runs: list[float], windows: list[float] | None = None, share: float | None = None,
           dispersion: float | None = None) -> Speed:
    return Speed(runs=runs, windows=windows or [],
                 other_share=[] if share is None else [share],
                 dispersion=[] if dispersion is None else [dispersion])


def test_min_p_is_two_over_the_orderings() -> None:
    assert min_p(3, 3) == pytest.approx(0.1)
    assert min_p(4, 4) == pytest.approx(2 / 70)
    assert min_p(0, 5) == 1.0
    # what scipy's exact test gives for fully separated samples
    assert scipy.stats.mannwhitneyu([1, 2, 3, 4], [5, 6, 7, 8], method="exact").pvalue \
        == pytest.approx(min_p(4, 4))


def test_a_significant_slowdown_beyond_the_effect_regresses() -> None:
    base, new = [1000.0, 1010.0, 990.0, 1005.0], [850.0, 858.0, 842.0, 851.0]
    t = judge(_speed(base), _speed(new), GateSettings())
    assert t["verdict"] == "regressed" and t["evidence"] == "runs"
    assert t["change"] == pytest.approx(850.5 / 1002.5 - 1)
    assert t["p"] == pytest.approx(scipy.stats.mannwhitneyu(
        base, new, alternative="two-sided").pvalue)
    assert t["p"] == pytest.approx(2 / 70)
    # the same samples faster: improved; a floor above the change: unchanged
    assert judge(_speed(new), _speed(base), GateSettings())["verdict"] == "improved"
    assert judge(_speed(base), _speed(new), GateSettings(floor=0.2))["verdict"] == "unchanged"
    # a level the test cannot reach with 4 and 4 runs and no windows: too few samples
    t = judge(_speed(base), _speed(new), GateSettings(alpha=0.01))
    assert t["verdict"] == "inconclusive" and "too few samples" in t["reason"]


def test_overlapping_runs_are_inconclusive_and_three_a_side_fall_back_to_windows() -> None:
    t = judge(_speed([1000, 700, 1300, 900]), _speed([800, 650, 1200, 700]), GateSettings())
    assert t["verdict"] == "inconclusive" and "not significant" in t["reason"]
    # 3 and 3 runs cannot reach p < 0.05 (min 0.1): the windows are tested, and decide nothing
    slow = judge(_speed([1000, 1000, 1000], [100.0] * 6), _speed([800, 800, 800], [80.0] * 6),
                 GateSettings())
    assert slow["evidence"] == "windows" and slow["verdict"] == "inconclusive"
    assert slow["p"] < 0.05 and "the windows of one process share its conditions" \
        in slow["reason"]
    few = judge(_speed([1000] * 3, [100.0] * 4), _speed([800] * 3, [80.0] * 6), GateSettings())
    assert few["verdict"] == "inconclusive" and "too few samples" in few["reason"]


def test_noisy_windows_make_a_change_within_their_noise_inconclusive() -> None:
    base = _speed([1000] * 3, [100.0, 101, 99, 100, 102, 98], dispersion=0.3)
    new = _speed([800] * 3, [80.0, 81, 79, 80, 82, 78], dispersion=0.3)
    t = judge(base, new, GateSettings())
    assert t["verdict"] == "inconclusive" and "noisy cells (dispersion ±30%)" in t["reason"]
    base.dispersion, new.dispersion = [0.02], [0.02]  # quiet windows: still not runs
    t = judge(base, new, GateSettings())
    assert t["verdict"] == "inconclusive" and "noisy" not in t["reason"]


def test_a_slowdown_the_load_can_explain_is_inconclusive() -> None:
    base, new = [1000.0, 1010.0, 990.0, 1005.0], [700.0, 708.0, 692.0, 701.0]
    # others took 5 % of the CPU in the base and 55 % in the new run: q = 0.45 / 0.95
    t = judge(_speed(base, share=0.05), _speed(new, share=0.55), GateSettings())
    assert load_ratio(0.05, 0.55) == pytest.approx(0.45 / 0.95)
    assert t["verdict"] == "inconclusive" and "load differed" in t["reason"]
    assert "5%" in t["reason"] and "55%" in t["reason"]
    # a slowdown far beyond what the load explains (to 10 %, below q / 2 = 24 %)
    crawl = judge(_speed(base, share=0.05), _speed([r / 10 for r in new], share=0.55),
                  GateSettings())
    assert crawl["verdict"] == "regressed"
    # a load within the tolerance does not excuse it
    same = judge(_speed(base, share=0.05), _speed(new, share=0.1), GateSettings())
    assert same["verdict"] == "regressed"
    assert judge(_speed(base, share=0.05), _speed(new, share=0.1),
                 GateSettings(load_tolerance=0.01))["verdict"] == "inconclusive"
    other_cpu = judge(_speed(base), _speed(new), GateSettings(), ("cpu A", "cpu B"))
    assert other_cpu["verdict"] == "inconclusive" and "different CPUs" in other_cpu["reason"]


def test_repeats_are_runs() -> None:
    assert parse_rates("812.5 790 bad -1") == [812.5, 790.0]
    assert parse_rates(812.5) == [812.5] and parse_rates(math.nan) == [] \
        and parse_rates(None) == []
    side = Speed()
    side.add({"samples_per_s": 800.0, "throughput_repeat_rates": "810 790"}, [])
    assert side.runs == [800.0, 810.0, 790.0] and side.repeats
    t = judge(_speed([1000.0] * 5), side, GateSettings())
    assert t["evidence"] == "repeats"


# -- real runs ----------------------------------------------------------------------------
SLEEPY = '''
import time

import torch
from harness import hookimpl

SLEEP_S = {sleep}


class Sleepy(torch.optim.SGD):
    def step(self, closure=None):
        if SLEEP_S:
            time.sleep(SLEEP_S)
        return super().step(closure)


@hookimpl
def register_optimizers(registry):
    registry.add_torch("sleepy", Sleepy, lr=0.01)
'''

GRID = ["-m", "regression", "-s", "0-3", "--steps", "150", "--workers", "1", "--quiet"]


def _run(out: Path, *extra: str) -> Path:
    """``harness run`` in a process of its own, as a user runs it (a process keeps the plugin
    files it loaded, and its workers are forked from it)."""
    proc = run_cli("run", *GRID, "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    return out


def _burn() -> None:
    while True:
        pass


@pytest.mark.long
def test_a_cpu_burner_alongside_the_new_run_never_reads_regressed(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", "-o", "sgd,adam")
    burner = mp.get_context("fork").Process(target=_burn, daemon=True)
    burner.start()
    try:
        new = _run(tmp_path / "new", "-o", "sgd,adam")
    finally:
        burner.kill()
        burner.join()
    cmp = compare_runs(base, new)
    assert set(cmp.table["throughput_verdict"]) <= {"inconclusive", "unchanged", "improved"}, \
        cmp.table[["cell", "throughput_change", "throughput_reason"]].to_string()
    assert set(cmp.table["metric_verdict"]) == {"unchanged"}, cmp.table.to_string()  # same losses
    assert main(["compare", str(base), str(new)]) == 0


@pytest.mark.long
def test_a_step_that_sleeps_reads_regressed(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    plugin = tmp_path / "sleepy.py"
    plugin.write_text(SLEEPY.format(sleep=0.0))
    base = _run(tmp_path / "base", "-o", "sleepy", "--plugin", str(plugin))
    plugin.write_text(SLEEPY.format(sleep=0.005))  # the plugin's next version
    new = _run(tmp_path / "new", "-o", "sleepy", "--plugin", str(plugin))
    cmp = compare_runs(base, new)
    row = cmp.table.iloc[0]
    assert row["throughput_verdict"] == "regressed", row["throughput_reason"]
    assert row["throughput_evidence"] == "runs" and row["throughput_p"] < 0.05
    assert row["metric_verdict"] == "unchanged"
    capsys.readouterr()
    assert main(["compare", str(base), str(new)]) == 1
    assert "1 of 1 matched cell group(s) regressed." in capsys.readouterr().out


def _scale(run: Path, dest: Path, metric: str, factor: float) -> Path:
    shutil.copytree(run, dest)
    for path in (dest / "cells").glob("*.json"):
        rec: dict[str, Any] = json.loads(path.read_text("utf-8"))
        rec["summary"][metric] *= factor
        path.write_text(json.dumps(rec), "utf-8")
    return dest


def test_a_metric_is_judged_on_its_better_side(tmp_path: Path) -> None:
    """classification's test_accuracy is better higher (its metric_directions entry says
    max): 10 % less on every seed is a regression, 10 % more an improvement; its target
    metric, test_loss, is better lower."""
    base = tmp_path / "base"
    assert main(["run", "-m", "classification", "-o", "adam", "-s", "0-2", "--steps", "60",
                 "--workers", "0", "--out", str(base), "--quiet"]) == 0
    accuracy = Thresholds(metric="test_accuracy")
    worse = compare_runs(base, _scale(base, tmp_path / "worse", "test_accuracy", 0.9), accuracy)
    row = worse.table.iloc[0]
    assert (row["metric"], row["metric_direction"]) == ("test_accuracy", "max")
    assert row["metric_verdict"] == "regressed" and worse.regressed
    assert row["metric_change"] == pytest.approx(-0.1)
    better = compare_runs(base, _scale(base, tmp_path / "better", "test_accuracy", 1.1),
                          accuracy)
    assert better.table.iloc[0]["metric_verdict"] == "improved" and not better.regressed
    assert main(["compare", str(base), str(tmp_path / "worse"), "--metric",
                 "test_accuracy"]) == 1
    assert main(["compare", str(base), str(tmp_path / "better"), "--metric",
                 "test_accuracy"]) == 0
    # the target metric, lower is better: 10 % more loss on every seed regresses
    loss = compare_runs(base, _scale(base, tmp_path / "lossier", "test_loss", 1.1))
    assert (loss.table.iloc[0]["metric"], loss.table.iloc[0]["metric_direction"]) == \
        ("test_loss", "min")
    assert loss.table.iloc[0]["metric_verdict"] == "regressed"
    assert main(["compare", str(base), str(base), "--metric", "nope"]) == 2


def test_on_a_saturated_machine_one_more_process_is_a_load_difference() -> None:
    """Others at 93 % of the CPU time, then 96 %: the cell's free time fell by 40 %, which a
    clip at 95 % would have hidden."""
    base, new = [1000.0, 1010.0, 990.0, 1005.0], [700.0, 708.0, 692.0, 701.0]
    assert load_ratio(0.93, 0.96) == pytest.approx(0.04 / 0.07)
    t = judge(_speed(base, share=0.93), _speed(new, share=0.96), GateSettings())
    assert t["verdict"] == "inconclusive" and "load differed" in t["reason"]
