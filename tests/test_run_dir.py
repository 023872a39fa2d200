"""The run directory as the unit of a run: one run writes into it at a time, a signal
stops a run in any executor, and ``--resume`` continues the run its first command began."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.outcome import EXIT_CELLS_FAILED
from tests.helpers import run_cli, run_with_fault, wait_for

pytestmark = pytest.mark.slow

LONG = ["-m", "regression", "-o", "sgd", "-s", "0-2", "--steps", "1000000", "--quiet"]


def _start(out: Path, *extra: str) -> subprocess.Popen[str]:
    """A long run, returned once its first cell is training (its first checkpoint)."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *LONG, *extra,
                             "--checkpoint-every", "20", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any((out / "checkpoints").glob("*")), "the first cell's start", proc=proc)
    return proc


def _records(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_an_inline_run_and_the_cell_it_stopped_has_no_record(
        tmp_path: Path, signum: int, code: int) -> None:
    out = tmp_path / "run"
    proc = _start(out, "--workers", "0")
    proc.send_signal(signum)
    text, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert f"Resume with: harness run --resume {out}" in err
    assert _records(out) == []  # not an "error" record that --resume would skip
    assert f"0 of 3 cells recorded; results in {out}" in text  # no empty tally "()"


def test_one_run_at_a_time_writes_into_a_directory(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    proc = _start(out, "--workers", "1")
    try:
        assert main(["run", "--resume", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert f"is in use by another harness run (pid {proc.pid})" in err[0]
        assert main(["run", "-m", "classification", "--out", str(out), "--quiet"]) == 2
        assert "already holds a run" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 143
    # the lock went with the process: the run can be continued (here with a smaller grid
    # than a million steps would take, by removing nothing and stopping at once)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"][:2] == ["harness", "run"]


def test_a_folder_with_only_a_manifest_is_continued_not_reused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    assert main(["run", "-m", "regression", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"--resume {out}" in err


def test_resume_keeps_the_command_and_the_settings_the_cells_ran_with(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The commands run in this process (cells inline): the manifest records the argv given
    # to main, as it records the command line of a process. --deterministic sets
    # CUBLAS_WORKSPACE_CONFIG in the process: put back after the test.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    out = tmp_path / "run"
    first = ["run", "-m", "regression", "-o", "adam", "-s", "0-1", "--steps", "30",
             "--opt-impl", "foreach", "--deterministic", "--workers", "0", "--out", str(out),
             "--quiet"]
    assert main(first) == 0
    (next(iter(sorted((out / "cells").glob("*.json"))))).unlink()
    capsys.readouterr()

    assert main(["run", "--resume", str(out), "--opt-impl", "loop"]) == 2
    assert capsys.readouterr().err.strip() == (
        "harness: error: --opt-impl loop differs from the resumed run's opt_impl 'foreach': "
        "a resumed run keeps the settings its cells ran with")

    assert main(["run", "--resume", str(out), "--workers", "0", "--quiet"]) == 0, \
        capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == ["harness", *first]
    assert manifest["resumed"][0]["command"] == ["harness", "run", "--resume", str(out),
                                                 "--workers", "0", "--quiet"]
    assert manifest["options"]["speed"]["opt_impl"] == "foreach"
    assert manifest["options"]["execution"]["deterministic"] is True
    recs = _records(out)
    assert len(recs) == 2
    assert {r["summary"]["opt_impl"] for r in recs} == {"foreach"}


def test_resume_refuses_other_windows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--windows sets a curve's rows: a resumed run keeps its own instead of ignoring the flag."""
    out = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "20",
                 "--windows", "5", "--workers", "0", "--out", str(out), "--quiet"]) == 0
    manifest = (out / "manifest.json").read_text()
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--windows", "10", "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "harness: error: --windows 10 differs from the resumed run's windows 5: "
        "a resumed run keeps the settings its cells ran with")
    assert (out / "manifest.json").read_text() == manifest
    assert main(["run", "--resume", str(out), "--windows", "5", "--workers", "0",
                 "--quiet"]) == 0


@pytest.mark.parametrize("args", [
    ["run", "--resume", ""], ["run", "", "--dry-run"], ["run", "-m", "regression", "--out", ""],
    ["run", "-m", "regression", "--data-dir", " ", "--dry-run"],
])
def test_an_empty_path_is_an_error_not_the_default(args: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("the path is empty"), err


def test_a_dry_run_checks_the_speed_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "regression", "--dry-run", "--loader", "foo"]) == 2
    assert "--loader: expected one of" in capsys.readouterr().err


def _file_size_limit(limit: int) -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_record_that_cannot_be_written_is_one_line_naming_it(tmp_path: Path) -> None:
    """A full disk mid-run (here a file-size limit: the manifest fits, a record does not)."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "-m", "regression", "-o", "sgd", "-s", "0",
         "--steps", "200", "--workers", "0", "--out", str(out), "--quiet"],
        capture_output=True, text=True, preexec_fn=lambda: _file_size_limit(12_000),
        timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: cannot write {out}/cells/")
    assert ".json: File too large; the run stopped" in err[0]
    assert err[0].endswith(f"resume with harness run --resume {out}")
    assert not list((out / "cells").glob("*"))  # no half-written record, no temporary file


@pytest.mark.parametrize("workers", ["0", "1", "2"])
def test_a_record_the_full_disk_refuses_stops_the_run_and_keeps_the_others(
        tmp_path: Path, workers: str) -> None:
    """The disk fills up at the second record, in the driver (inline) or while workers
    run: the run stops with one line naming the record and exit 2, the first record is
    kept (never retried as a dead worker, never counted lost), and --resume completes."""
    out = tmp_path / "run"
    grid = ["run", "-m", "regression", "-o", "sgd,adam,momentum", "-s", "0", "--steps", "20",
            "--workers", workers, "--out", str(out), "--quiet"]
    proc = run_with_fault("enospc-cell:2", *grid)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: cannot write {out}/cells/"), err
    assert ".json: No space left on device; the run stopped" in err[0]
    assert len(_records(out)) == 1 and _records(out)[0]["status"] == "ok"
    assert not [p for p in (out / "cells").iterdir() if not p.name.endswith(".json")]
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 already done" in resumed.stdout
    assert sorted(r["status"] for r in _records(out)) == ["ok", "ok", "ok"]


def test_results_are_written_with_the_umask_not_owner_only(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "20",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    import os
    umask = os.umask(0)
    os.umask(umask)
    for path in [out / "manifest.json", *(out / "cells").glob("*.json")]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_a_killed_cell_counts_the_samples_its_steps_consumed(tmp_path: Path) -> None:
    """A DQN step is one environment step: a cell killed at its timeout must not report
    batch_size (32) samples per step, as it once did."""
    out = tmp_path / "run"
    # Two workers: both cells run their 8 s to the timeout side by side, not one after the
    # other (and no worker is started again after the first kill).
    proc = run_cli("run", "-m", "dqn,regression", "-o", "adam", "-s", "0", "--steps", "200000",
                   "--timeout", "8", "--workers", "2", "--out", str(out), "--quiet",
                   cwd=tmp_path)
    assert proc.returncode == EXIT_CELLS_FAILED, proc.stderr
    recs = {r["cell"]["problem"]: r for r in _records(out)}
    for problem, rec in sorted(recs.items()):
        per_step = 1 if problem == "dqn" else rec["cell"]["batch_size"]
        assert rec["status"] == "timeout"
        assert all(p["samples"] == p["step"] * per_step for p in rec["curve"])
        summary = rec["summary"]
        steps_per_s = 1000 / summary["step_time_ms"]
        assert summary["samples_per_s"] == pytest.approx(per_step * steps_per_s, rel=1e-6)


def test_a_run_recorded_before_executor_settings_resumes_with_its_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/baseline's manifest records the local executor's knobs (workers,
    pin_cpus...) among the execution options, as manifests did before executors had
    settings of their own: --resume accepts it and keeps the settings its cells ran with."""
    import shutil

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    out = tmp_path / "baseline"
    shutil.copytree(Path(__file__).parent.parent / "benchmarks" / "baseline", out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["execution"]["workers"] == 2  # the old shape
    manifest["options"]["execution"]["deterministic"] = True
    (out / "manifest.json").write_text(json.dumps(manifest))
    next(iter(sorted((out / "cells").glob("regression-sgd-cpu-s0-*.json")))).unlink()

    assert main(["run", "--resume", str(out), "--workers", "0", "--quiet"]) == 0
    assert "(17 already done)" in capsys.readouterr().out
    resumed = json.loads((out / "manifest.json").read_text())
    assert resumed["options"]["execution"]["deterministic"] is True
    assert resumed["options"]["executor"] == {"name": "local", "settings": {"workers": "0"}}
    assert len(list((out / "cells").glob("*.json"))) == 18


QUICK = ["run", "-m", "regression", "-o", "sgd,adam", "-s", "0", "--steps", "20", "--workers",
         "0", "--quiet"]


@pytest.mark.parametrize("limit", [0, 1, 600])
def test_a_disk_full_at_start_is_one_line_and_leaves_the_directory_usable(
        tmp_path: Path, limit: int) -> None:
    """The lock file, the manifest or the first record cannot be written (a file-size
    limit stands in for a full disk): one line naming the file, exit 2, and the next run
    into the directory is not refused."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "harness", *QUICK, "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: _file_size_limit(limit))
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"harness: error: cannot write {out}/"), err
    assert "Traceback" not in proc.stderr
    again = run_cli(*QUICK, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert len(_records(out)) == 2


def test_enospc_at_start_is_one_line_and_the_lock_is_released(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_with_fault("enospc:0", *QUICK, "--out", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"harness: error: cannot write {out}/manifest.json: " \
        "No space left on device"
    assert (out / ".lock").read_text() == ""  # no pid left behind: nobody holds it
    assert run_cli(*QUICK, "--out", str(out)).returncode == 0


def test_sigterm_while_the_tables_are_written_stops_like_sigterm_in_the_grid(
        tmp_path: Path) -> None:
    """The tables are written whole (each atomically), then the run stops with 143 and the
    resume hint, as a SIGTERM during the grid does; no traceback, no half table."""
    out = tmp_path / "run"
    proc = run_with_fault("sigterm-tables", *QUICK, "--out", str(out))
    assert proc.returncode == 143, proc.stderr
    assert "interrupted by SIGTERM" in proc.stderr and "Traceback" not in proc.stderr
    import pandas as pd

    assert len(pd.read_csv(out / "summary.csv")) == 2
    assert len(pd.read_parquet(out / "summary.parquet")) == 2
    assert set(pd.read_parquet(out / "curves.parquet")["cell_id"]) == \
        {r["cell_id"] for r in _records(out)}
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = run_cli("run", "--resume", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "2 already done" in resumed.stdout
