"""The command line: one-line errors with exit code 2, and a full run read back."""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.cli import main
from harness.imports import collector_paused
from harness.results import SUMMARY_COLUMNS
from tests.helpers import run_cli

BAD_RUNS = [
    (["-m", "regresion"], "unknown model 'regresion' (did you mean 'regression'?)"),
    (["-o", "adamm"], "unknown optimizer 'adamm' (did you mean 'adam'?)"),
    (["-s", "0-x"], "seeds: '0-x' is not a seed"),
    (["-s", "5-1"], "is empty"),
    (["--set", "sgd.lrr=0.1"], "unknown hyperparameter 'lrr' (did you mean 'lr'?)"),
    (["--set", "adma.lr=0.1"],
     "no model, optimizer or schedule named 'adma' (did you mean 'adam'?)"),
    (["--set", "activation=swish"], "activation must be one of"),
    (["--set", "nonsense=1"], "no selected model or optimizer takes the parameter 'nonsense'"),
    (["--steps", "0"], "--steps: 0 is out of range"),
    (["--steps", "ten"], "--steps: expected a positive integer"),
    (["--batch-size", "-3"], "--batch-size"),
    (["-d", "gpu"], "unknown device 'gpu'"),
    (["--preset", "quik"], "unknown preset 'quik' (did you mean 'quick'?)"),
    (["does-not-exist.toml"], "cannot read grid file 'does-not-exist.toml'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--executor", "locl"], "unknown executor 'locl' (did you mean 'local'?)"),
    (["--scheduler", "tcp://127.0.0.1:1"], "executor 'local' has no setting 'scheduler'"),
    (["--executor-option", "noequals"], "expected KEY=VALUE"),
    (["--timeout", "0"], "--timeout: 0 is out of range"),
    (["--workers", "0", "--timeout", "5"], "--timeout needs worker processes"),
    (["--workers", "-1"], "--workers: -1 is out of range"),
    (["--checkpoint-every", "0"], "--checkpoint-every: 0 is out of range"),
    (["--rerun-failed"], "--rerun-failed goes with --resume DIR"),
    (["--loader", "disk"], "--loader: expected one of device, dataloader"),
    (["--opt-impl", "fast"], "--opt-impl: expected one of auto, fused, foreach, loop"),
    (["--cuda-graphs", "--compile"], "--cuda-graphs and --compile cannot be combined"),
    (["--pin-memory"], "go with --loader dataloader"),
    (["--cudnn-benchmark", "--deterministic"], "cannot be combined with --deterministic"),
    (["--workers", "0", "--pin-cpus"], "--pin-cpus places worker processes"),
    (["--workers", "0", "--cuda-mps"], "--cuda-mps makes worker processes clients"),
    (["--cuda-mps"], "--cuda-mps shares a GPU between workers; this grid has no cuda device"),
    # The local executor's flags are spellings of its settings, checked the same way.
    (["--executor-option", "workers=0", "--timeout", "5"], "--timeout needs worker processes"),
    (["--executor-option", "pin_cpus=maybe"], "pin_cpus='maybe': expected true or false"),
    (["--workers", "2", "--executor-option", "workers=3"],
     "--workers 2 and --executor-option workers=3 disagree"),
    (["--executor-option", "scheduler=tcp://h:1"], "executor 'local' has no setting 'scheduler'"),
    # ... and a flag the chosen executor does not spell is its setting of that name.
    (["--executor", "dask", "--workers", "0"], "--workers 0 runs cells inline"),
    (["--executor", "dask", "--pin-cpus"], "--pin-cpus places the local executor's workers"),
    (["--executor", "dask", "--cuda-mps"], "for Dask workers, start nvidia-cuda-mps-control"),
    (["--executor", "dask", "--workers-per-device", "2"],
     "executor 'dask' has no setting 'workers_per_device'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_RUNS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["run", "-m", "regression", "-o", "sgd", "--steps", "5", "--out", str(out),
                 *args])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert not out.exists() and not (tmp_path / "results").exists()


def test_bad_grid_file_content(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('models = ["regression"\n')
    assert main(["run", str(grid), "--out", str(tmp_path / "o")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_show_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path / "nope")]) == 2
    assert main(["show", str(tmp_path)]) == 2
    assert "holds no harness results" in capsys.readouterr().err


def test_output_dir_holding_a_run_is_refused(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "x.json").write_text("{}")
    assert main(["run", "-m", "regression", "-o", "sgd", "--out", str(tmp_path)]) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
def test_real_process_error_has_no_traceback(tmp_path: Path) -> None:
    proc = run_cli("run", "-m", "regression", "-o", "adam", "-s", "x", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: seeds: 'x' is not a seed or a range like 0-4"]
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_end_to_end_grid_through_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression,classification", "-o", "sgd,adam", "-s", "0-1",
                   "--steps", "60", "--set", "activation=relu,tanh", "--set", "adam.lr=0.02",
                   "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"results in {out}" in proc.stdout
    assert "\r" not in proc.stderr  # no progress bar: stderr is not a terminal

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 2 * 2 * 2
    assert list(summary.columns[: len(SUMMARY_COLUMNS)]) == list(SUMMARY_COLUMNS)
    assert set(summary["status"]) == {"ok"}
    assert set(summary["activation"]) == {"relu", "tanh"}
    assert set(summary.loc[summary.optimizer == "adam", "hp.lr"]) == {0.02}
    assert (summary["samples_per_s"] > 0).all() and (summary["peak_mem_mb"] > 0).all()
    assert (summary["steps_done"] == 60).all()
    assert summary["data_source"].eq("synthetic").all()
    cls = summary[summary.model == "classification"]
    assert cls["test_accuracy"].between(0, 1).all()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet")[["model", "seed"]],
                                  summary[["model", "seed"]])

    curves = pd.read_parquet(out / "curves.parquet")
    assert set(curves["cell_id"]) == set(summary["cell_id"])
    first = curves[curves.cell_id == summary.cell_id[0]]
    assert first["step"].is_monotonic_increasing and first["step"].iloc[-1] == 60
    assert first["elapsed_s"].is_monotonic_increasing
    assert first["test_loss"].notna().sum() >= 2  # evaluated at intervals and at the end

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][:2] == ["harness", "run"]
    assert len(manifest["cells"]) == 16
    assert manifest["versions"]["torch"] and manifest["versions"]["python"]
    assert manifest["machine"]["cpu_count"] >= 1 and manifest["devices"]["cpu"]
    assert manifest["git"] is None or len(manifest["git"]["commit"]) == 40

    shown = run_cli("show", str(out))
    assert shown.returncode == 0 and "classification" in shown.stdout and "ok" in shown.stdout


# -- outputs that cannot be written -------------------------------------------------------
@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "run"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "5",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    return out


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


UNWRITABLE_RUN_OUTS = [("afile/sub", "afile/sub", "Not a directory")]
if Path("/proc/self").is_dir():
    UNWRITABLE_RUN_OUTS.append(("/proc/self/nope", "/proc/self/nope",
                                "No such file or directory"))


@pytest.mark.parametrize(("out", "named", "reason"), UNWRITABLE_RUN_OUTS)
def test_run_into_an_unwritable_out_is_one_line_and_writes_nothing(
    out: str, named: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    code = main(["run", "-m", "regression", "-o", "sgd", "--steps", "5", "--out", out])
    assert code == 2
    assert _one_error_line(capsys) == f"harness: error: cannot write {named}: {reason}"
    assert _snapshot(tmp_path) == {"afile": b"mine\n"}  # nothing written, nothing lost


@pytest.mark.parametrize(("out", "named"), [("afile", "afile"), ("afile/sub", "afile/sub")])
def test_report_into_a_file_is_one_line(
    out: str, named: str, small_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    before = _snapshot(small_run)
    assert main(["report", str(small_run), "--out", out]) == 2
    assert _one_error_line(capsys) == f"harness: error: cannot write {named}: Not a directory"
    assert _snapshot(tmp_path) == {"afile": b"mine\n"}
    assert _snapshot(small_run) == before


@pytest.mark.parametrize(("out", "named", "reason"), [
    ("adir", "adir", "Is a directory"),
    ("afile/x.json", "afile", "Not a directory"),
    ("/dev/full", "/dev/full", "No space left on device"),
])
def test_export_into_an_unwritable_path_is_one_line(
    out: str, named: str, reason: str, small_run: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    if out == "/dev/full" and not Path(out).exists():
        pytest.skip("no /dev/full here")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine\n")
    (tmp_path / "adir").mkdir()
    assert main(["export", str(small_run), "--format", "pytest-benchmark", "--out", out]) == 2
    assert _one_error_line(capsys) == f"harness: error: cannot write {named}: {reason}"
    assert _snapshot(tmp_path) == {"afile": b"mine\n"}


def test_an_oserror_about_something_else_is_not_hidden(
    small_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A file the command reads is not one of its outputs: a failure there is a bug to see.
    from harness.cli import read

    def broken(args: object, argv: object) -> int:
        raise PermissionError(13, "Permission denied", str(tmp_path / "elsewhere"))

    monkeypatch.setattr(read, "cmd_show", broken)
    with pytest.raises(PermissionError):
        main(["show", str(small_run)])


def _closed_pipe() -> int:
    read, write = os.pipe()
    os.close(read)
    return write


@pytest.mark.slow
@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["show", "RUN"]])
def test_a_closed_stdout_pipe_ends_quietly_with_141(args: list[str], small_run: Path,
                                                   tmp_path: Path) -> None:
    write = _closed_pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "harness", *[str(small_run) if a == "RUN" else a
                                                for a in args]],
            stdout=write, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 141
    assert proc.stderr == ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_stdout_on_a_full_disk_is_one_line(small_run: Path, tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "harness", "show", str(small_run)],
                              stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: cannot write <stdout>: No space left on device"]


def test_the_executable_runs_the_exit_handlers_and_keeps_the_exit_code(tmp_path: Path) -> None:
    """``entry`` (``harness``, ``python -m harness``) skips the interpreter's teardown but
    not the exit handlers, and exits with the command's code."""
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('exit handler ran', flush=True))\n"
              "sys.argv = ['harness', *sys.argv[1:]]\n"
              "from harness.cli import entry\n"
              "entry()\n")
    ok = subprocess.run([sys.executable, "-c", script, "--help"], capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "usage: harness" in ok.stdout and ok.stdout.rstrip().endswith("exit handler ran")
    bad = subprocess.run([sys.executable, "-c", script, "show", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stdout.strip() == "exit handler ran"
    assert bad.stderr.startswith("harness: error:")


def test_under_a_profiler_the_executable_exits_normally(tmp_path: Path) -> None:
    """``python -m cProfile -m harness`` gets its profile: a profiler writes it at the
    normal exit, which ``entry`` skips otherwise."""
    out = tmp_path / "harness.prof"
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "harness",
                           "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and out.stat().st_size > 0


def test_the_command_module_is_imported_with_the_collector_paused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """harness.imports: the collections an import sets off walk what it made in vain; the
    collector is paused while the command's module imports its libraries, then restored."""
    seen: list[tuple[str, bool]] = []
    real = importlib.import_module

    def spy(name: str, package: str | None = None) -> Any:
        seen.append((name, gc.isenabled()))
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", spy)
    baseline = Path(__file__).parent.parent / "benchmarks" / "baseline"
    assert main(["show", str(baseline)]) == 0
    assert ("harness.cli.read", False) in seen
    assert gc.isenabled()


def test_collector_paused_restores_what_it_found() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that turned it off keeps it off
    finally:
        gc.enable()
