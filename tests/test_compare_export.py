"""``harness compare`` (a regression gate) and ``harness export`` (pytest-benchmark JSON)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.report.compare import compare_runs


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "base"
    assert main(["run", "-m", "regression", "-o", "sgd,adam", "-s", "0-2", "--steps", "40",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    return out


Edit = Callable[[dict[str, Any]], dict[str, Any] | None]


def _copy(run: Path, dest: Path, edit: Edit | None = None) -> Path:
    """A copy of ``run`` with ``edit`` applied to each record (returning None deletes it)."""
    shutil.copytree(run, dest)
    for path in (dest / "cells").glob("*.json"):
        rec = json.loads(path.read_text("utf-8"))
        new = edit(rec) if edit else rec
        if new is None:
            path.unlink()
        else:
            path.write_text(json.dumps(new), "utf-8")
    return dest


def _set(field: str, values: dict[tuple[str, int], float]) -> Edit:
    def edit(rec: dict[str, Any]) -> dict[str, Any]:
        key = (rec["cell"]["optimizer"], rec["cell"]["seed"])
        if key in values:
            rec["summary"][field] = values[key]
        return rec
    return edit


def _per_seed(optimizer: str, values: list[float]) -> dict[tuple[str, int], float]:
    return {(optimizer, seed): v for seed, v in enumerate(values)}


def _row(cmp: Any, arm: str) -> dict[str, Any]:
    table = cmp.table
    return dict(table[table["cell"].str.contains(f"| {arm} |", regex=False)].iloc[0])


def test_identical_runs_pass(base_run: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    new = _copy(base_run, tmp_path / "new")
    assert main(["compare", str(base_run), str(new)]) == 0
    out = capsys.readouterr().out
    assert "No regression in 2 matched cell group(s)" in out
    assert " regressed" not in out


def test_a_throughput_drop_the_seeds_cannot_show_is_inconclusive(
        base_run: Path, tmp_path: Path) -> None:
    """15 % slower on three seeds a side: the Mann-Whitney test cannot reach p < 0.05 on 3
    and 3 runs, so the steady windows (unchanged in these copies) are tested: not
    significant, inconclusive, and the gate passes."""
    tight = {**_per_seed("sgd", [1000, 1010, 990]), **_per_seed("adam", [1000, 2000, 3000])}
    slower = {**_per_seed("sgd", [850, 858, 842]), **_per_seed("adam", [1000, 2000, 3000])}
    base = _copy(base_run, tmp_path / "base", _set("samples_per_s", tight))
    new = _copy(base_run, tmp_path / "new", _set("samples_per_s", slower))
    cmp = compare_runs(base, new)
    sgd, adam = _row(cmp, "sgd"), _row(cmp, "adam")
    assert sgd["throughput_change"] == pytest.approx(-0.15)
    assert sgd["throughput_verdict"] == "inconclusive"
    assert sgd["throughput_evidence"] == "windows" and sgd["throughput_p"] == 1.0
    assert "not significant" in sgd["throughput_reason"]
    assert adam["throughput_verdict"] == "unchanged"
    assert not cmp.regressed
    assert main(["compare", str(base), str(new)]) == 0


def test_single_seed_uses_the_windows(base_run: Path, tmp_path: Path) -> None:
    def seed0(rec: dict[str, Any]) -> dict[str, Any] | None:
        return rec if rec["cell"]["seed"] == 0 else None

    base = _copy(base_run, tmp_path / "base", seed0)
    new = _copy(base_run, tmp_path / "new", seed0)
    cmp = compare_runs(base, new)
    assert set(cmp.table["throughput_verdict"]) == {"unchanged"}
    assert set(cmp.table["metric_noise"]) == {"floor only"}
    assert not cmp.regressed


def test_final_metric_pairs_seeds(base_run: Path, tmp_path: Path) -> None:
    losses = [0.10, 0.11, 0.12]
    base = _copy(base_run, tmp_path / "base", _set("test_loss", {
        **_per_seed("sgd", losses), **_per_seed("adam", losses)}))
    new = _copy(base_run, tmp_path / "new", _set("test_loss", {
        # 20% worse on every seed: a regression the seeds agree on
        **_per_seed("sgd", [1.2 * v for v in losses]),
        # the same values on other seeds: seed luck, not a change
        **_per_seed("adam", [0.12, 0.10, 0.11])}))
    cmp = compare_runs(base, new)
    sgd, adam = _row(cmp, "sgd"), _row(cmp, "adam")
    assert sgd["metric"] == "test_loss" and sgd["metric_noise"] == "paired seeds"
    assert sgd["metric_verdict"] == "regressed"
    assert sgd["metric_change"] == pytest.approx(0.2)
    assert adam["metric_verdict"] == "unchanged"


def test_failed_and_missing_cells(base_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def drop_adam(rec: dict[str, Any]) -> dict[str, Any] | None:
        return None if rec["cell"]["optimizer"] == "adam" else rec

    new = _copy(base_run, tmp_path / "missing", drop_adam)
    assert main(["compare", str(base_run), str(new)]) == 1  # lost cells fail the gate
    out = capsys.readouterr().out
    assert "1 cell group(s) only in base (not compared):" in out and "regression | adam" in out
    assert "3 cell(s) missing from the new run; the gate fails:" in out
    assert "regression | adam | cpu | seed 2" in out
    assert main(["compare", str(base_run), str(new), "--allow-missing"]) == 0
    assert "accepted (--allow-missing)" in capsys.readouterr().out

    def diverge(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["cell"]["optimizer"] == "sgd" and rec["cell"]["seed"] == 1:
            rec["status"] = "diverged"
        return rec

    new = _copy(base_run, tmp_path / "diverged", diverge)
    assert main(["compare", str(base_run), str(new)]) == 1
    out = capsys.readouterr().out
    assert "3/3 → 2/3" in out and " regressed" in out


def test_a_seed_that_stops_finishing_ok_regresses_even_if_the_base_had_a_failure(
        base_run: Path, tmp_path: Path) -> None:
    def status(new_status: dict[int, str]) -> Edit:
        def edit(rec: dict[str, Any]) -> dict[str, Any]:
            if rec["cell"]["optimizer"] == "adam" and rec["cell"]["seed"] in new_status:
                rec["status"] = new_status[rec["cell"]["seed"]]
            return rec
        return edit

    base = _copy(base_run, tmp_path / "base", status({0: "error"}))
    worse = _copy(base_run, tmp_path / "worse", status({0: "error", 1: "diverged", 2: "diverged"}))
    cmp = compare_runs(base, worse)
    adam = _row(cmp, "adam")
    assert adam["seeds"] == "2/3 → 0/3" and adam["status_verdict"] == "regressed"
    assert cmp.regressed
    # no seed ok in the new run: no median to judge, and the threshold stays a fraction
    assert adam["metric_verdict"] == "n/a" and 0 < adam["metric_threshold"] < 1
    assert adam["throughput_verdict"] == "n/a" and adam["throughput_threshold"] == 0.1
    # the failing seed recovering is not a regression
    assert _row(compare_runs(base, base_run), "adam")["status_verdict"] == "unchanged"


def test_paired_medians_are_over_the_shared_seeds(base_run: Path, tmp_path: Path) -> None:
    base = _copy(base_run, tmp_path / "base", _set("test_loss", _per_seed("sgd", [1.0, 2.0, 9.0])))

    def two_seeds(rec: dict[str, Any]) -> dict[str, Any] | None:
        if rec["cell"]["seed"] == 2:
            return None
        return _set("test_loss", _per_seed("sgd", [1.0, 2.0]))(rec)

    sgd = _row(compare_runs(base, _copy(base_run, tmp_path / "new", two_seeds)), "sgd")
    # seeds 0 and 1 are shared: base and new both have the median 1.5 there, no change
    assert (sgd["metric_base"], sgd["metric_new"]) == (1.5, 1.5)
    assert sgd["metric_change"] == 0 and sgd["metric_verdict"] == "unchanged"


def test_runs_with_nothing_in_common_are_a_usage_error(
        base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "50",
                 "--workers", "0", "--out", str(new), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", str(base_run), str(new)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to compare" in err[0]
    assert err[0].endswith("; regression | sgd | cpu: closest base group regression | sgd | "
                           "cpu differs in steps (base 40; new 50)"), err[0]


def test_the_closest_base_group_and_the_one_key_that_differs(
        base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Not a hint that mixes sgd's and adam's hyperparameters: adam's closest group, and lr.
    new = tmp_path / "new"
    assert main(["run", "-m", "regression", "-o", "adam", "-s", "0", "--steps", "40",
                 "--set", "adam.lr=0.005", "--workers", "0", "--out", str(new), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", str(base_run), str(new)]) == 2
    [err] = capsys.readouterr().err.strip().splitlines()
    assert err.endswith(": closest base group regression | adam | cpu differs in hyper.lr "
                        "(base 0.01; new 0.005)"), err
    assert "momentum" not in err and "sgd" not in err
    # Some groups match: each new one that does not is listed with its closest base group.
    both = tmp_path / "both"
    assert main(["run", "-m", "regression", "-o", "sgd,adam", "-s", "0", "--steps", "40",
                 "--set", "adam.lr=0.005", "--workers", "0", "--out", str(both), "--quiet"]) == 0
    capsys.readouterr()
    main(["compare", str(base_run), str(both), "--allow-missing"])
    out = capsys.readouterr().out
    assert "1 cell group(s) only in new (not compared):" in out
    assert ": closest base group regression | adam | cpu differs in hyper.lr (base 0.01; new " \
           "0.005)" in out


def test_matching_names_keys_apart() -> None:
    from harness.report.matching import closest, explain, group_keys

    base = {"problem": "p", "optimizer": "adam", "device": "cpu", "seed": 0, "steps": 10,
            "hyper": {"lr": 0.001, "betas": [0.9, 0.99]}, "params": {"width": 3},
            "versions": {"harness": "1"}}
    other = {**base, "optimizer": "sgd", "hyper": {"lr": 0.1, "momentum": 0.9}}
    new = {**base, "seed": 4, "versions": {"harness": "2"},
           "hyper": {"lr": 0.001, "betas": [0.9, 0.999], "amsgrad": True}}
    candidates = [("sgd", group_keys(other)), ("adam", group_keys(base))]
    label, diff = closest(group_keys(new), candidates) or ("", [])
    assert label == "adam" and [d.key for d in diff] == ["hyper.amsgrad", "hyper.betas"]
    assert explain(group_keys(new), candidates) == (
        "closest base group adam differs in hyper.amsgrad (base absent; new true), "
        "hyper.betas (base [0.9, 0.99]; new [0.9, 0.999])")
    assert explain(group_keys(new), []) == "the base run has no cell groups"


@pytest.mark.parametrize(("args", "message"), [
    (["compare", "{base}", "{missing}"], "no results directory"),
    (["compare", "{empty}", "{base}"], "holds no harness results"),
    (["compare", "{base}", "{base}", "--k", "-1"], "--k: -1 is out of range"),
    (["compare", "{base}", "{base}", "--metric-floor", "x"], "--metric-floor: expected a number"),
    (["export", "{missing}", "--format", "pytest-benchmark"], "no results directory"),
    (["export", "{base}", "--format", "csv"], "invalid choice: 'csv'"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, base_run: Path,
                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    paths = {"base": str(base_run), "missing": str(tmp_path / "nope"),
             "empty": str(tmp_path / "empty")}
    assert main([a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness: error: ") and message in err[0]


# -- export -----------------------------------------------------------------------------------
def _pytest_benchmark_cli() -> list[str]:
    script = Path(sys.executable).parent / "pytest-benchmark"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pytest_benchmark"]


def test_export_matches_pytest_benchmark_statistics(base_run: Path, tmp_path: Path) -> None:
    from pytest_benchmark.stats import Stats

    out = tmp_path / "bench.json"
    assert main(["export", str(base_run), "--format", "pytest-benchmark", "--out", str(out)]) == 0
    doc = json.loads(out.read_text("utf-8"))
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["commit_info"]["id"] and doc["machine_info"]["processor"]
    assert len(doc["benchmarks"]) == 6
    names = {b["fullname"] for b in doc["benchmarks"]}
    assert len(names) == 6
    for bench in doc["benchmarks"]:
        assert bench["group"] == "regression"
        assert bench["params"]["device"] == "cpu" and "hp.lr" in bench["params"]
        stats = bench["stats"]
        reference = Stats()
        for x in stats["data"]:
            reference.update(x)
        for name in Stats.fields:
            expected = getattr(reference, name)
            if isinstance(expected, str):
                assert stats[name] == expected, name
            else:
                assert stats[name] == pytest.approx(expected, rel=1e-9), name
        assert stats["iterations"] >= 1
        assert bench["extra_info"]["samples_per_s"] > 0


def test_pytest_benchmark_compare_reads_the_export(base_run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "0001_base.json", tmp_path / "0002_new.json"
    assert main(["export", str(base_run), "--format", "pytest-benchmark", "--out",
                 str(first)]) == 0
    assert main(["export", str(base_run), "--format", "pytest-benchmark"]) == 0
    second.write_text(capsys.readouterr().out, "utf-8")  # the stdout form is the same JSON
    proc = subprocess.run([*_pytest_benchmark_cli(), "compare", str(first), str(second),
                           "--columns=min,mean,ops", "--group-by=group"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "benchmark 'regression': 12 tests" in text
    assert "sgd[cpu-seed0]" in text and "adam[cpu-seed2]" in text
    assert "Failed to load" not in proc.stdout + proc.stderr


def test_a_new_run_that_lost_a_seed_fails_the_gate_naming_it(
        base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def drop(rec: dict[str, Any]) -> dict[str, Any] | None:
        return None if (rec["cell"]["optimizer"], rec["cell"]["seed"]) == ("sgd", 1) else rec

    new = _copy(base_run, tmp_path / "new", drop)
    assert main(["compare", str(base_run), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1 cell(s) missing from the new run; the gate fails:" in out
    assert "regression | sgd | cpu | seed 1" in out
    assert "No regression in 2 matched" in out  # the medians themselves are fine
    assert main(["compare", str(base_run), str(new), "--allow-missing"]) == 0


def test_cells_of_the_new_runs_own_grid_without_a_record_fail_the_gate(
        base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A new run stopped before it finished: cells its manifest lists have no record, even
    where the base has none of them either."""
    def only_adam(rec: dict[str, Any]) -> dict[str, Any] | None:
        return rec if rec["cell"]["optimizer"] == "adam" else None

    base = _copy(base_run, tmp_path / "base", only_adam)
    new = _copy(base_run, tmp_path / "new", lambda rec: rec if rec["cell"]["seed"] != 2
                or rec["cell"]["optimizer"] == "adam" else None)
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1 cell(s) missing from the new run" in out
    assert "regression | sgd | cpu | seed 2" in out


def test_error_cells_in_the_new_run_fail_the_gate_named_with_their_error(
        base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def crash(rec: dict[str, Any]) -> dict[str, Any]:
        if rec["cell"]["optimizer"] == "adam":
            rec["status"], rec["error"] = "error", "worker was killed by SIGKILL\nmore"
        return rec

    base = _copy(base_run, tmp_path / "base", crash)  # the base crashed the same way
    new = _copy(base_run, tmp_path / "new", crash)
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "3 cell(s) ended error in the new run; the gate fails:" in out
    assert "regression | adam | cpu | seed 0: worker was killed by SIGKILL" in out
    assert main(["compare", str(base), str(new), "--allow-missing"]) == 0
