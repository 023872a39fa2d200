"""Isolation, hard timeouts, crash statuses, interruption and resume: real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.grid import GridSpec, expand
from harness.outcome import EXIT_CELLS_FAILED
from harness.plugins import PluginHost
from harness.results import RunDirectory
from harness.run.resume import plan
from tests.helpers import pythonpath, run_cli, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def fault_env(installed_packages: Path) -> dict[str, str]:
    return {"PYTHONPATH": pythonpath(installed_packages),
            "HARNESS_PLUGINS": "harness,harness-faultplugin"}


def records(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


def test_bad_cells_get_their_status_and_good_cells_finish(fault_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    out = tmp_path / "faults"
    models = "fault-hang,fault-abort,fault-raise,fault-nan,fault-memory,regression"
    proc = run_cli("run", "-m", models, "-o", "adam", "-s", "0", "--steps", "40",
                   "--workers", "2", "--timeout", "10", "--max-memory-mb", "1000",
                   "--out", str(out), "--quiet", env=fault_env, cwd=tmp_path)
    assert proc.returncode == EXIT_CELLS_FAILED, proc.stderr
    summary = pd.read_csv(out / "summary.csv").set_index("model")
    status = summary["status"].to_dict()
    assert status == {"fault-hang": "timeout", "fault-abort": "error", "fault-raise": "error",
                      "fault-nan": "diverged", "fault-memory": "oom", "regression": "ok"}
    assert "SIGABRT" in summary.loc["fault-abort", "error"]
    assert "injected failure at step 5" in summary.loc["fault-raise", "error"]
    # The hard limit is enforced within a few seconds, and the curve is kept up to then.
    assert 10 <= summary.loc["fault-hang", "wall_s"] < 60  # killed at its timeout, not never
    assert summary.loc["fault-hang", "steps_done"] >= 1
    assert summary.loc["fault-nan", "steps_done"] == 5
    recs = {r["cell"]["problem"]: r for r in records(out)}
    assert "Traceback" in recs["fault-raise"]["traceback"]
    assert recs["fault-hang"]["curve"], "the curve up to the timeout is recorded"


@pytest.mark.long
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_keeps_finished_cells_and_resume_completes_the_grid(
    tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "run"
    args = ["run", "-m", "regression,classification", "-o", "sgd,adam", "-s", "0-3",
            "--steps", "300", "--workers", "1", "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    _wait_for_records(out, 2, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert f"interrupted by {signal.Signals(signum).name}" in err
    assert f"Resume with: harness run --resume {out}" in err
    done = len(records(out))
    assert 2 <= done < 16
    resumed = run_cli("run", "--resume", str(out), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({done} already done)" in resumed.stdout
    recs = records(out)
    assert len(recs) == 16 and len({r["key"] for r in recs}) == 16
    assert {r["status"] for r in recs} == {"ok"}


@pytest.mark.long
def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    args = ["-m", "regression,rnn-regression", "-o", "sgd,adam", "-s", "0-2", "--steps", "200",
            "--workers", "2", "--quiet"]
    whole = tmp_path / "whole"
    assert run_cli("run", *args, "--out", str(whole), cwd=tmp_path).returncode == 0

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    _wait_for_records(out, 3, proc)
    proc.kill()
    proc.wait(timeout=30)
    before = len(records(out))
    assert before < 12
    resumed = run_cli("run", "--resume", str(out), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    a = {r["key"]: r for r in records(whole)}
    b = {r["key"]: r for r in records(out)}
    assert set(a) == set(b) and len(b) == 12  # exactly one record per cell
    for key, rec in a.items():  # bit-identical on the CPU
        assert [p["loss"] for p in rec["curve"]] == [p["loss"] for p in b[key]["curve"]]
        assert rec["summary"]["final_loss"] == b[key]["summary"]["final_loss"]


@pytest.mark.long
def test_results_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    args = ["-m", "cnn,autoencoder", "-o", "adam", "-s", "0-1", "--steps", "20", "--quiet"]
    for n in ("1", "2"):
        assert run_cli("run", *args, "--workers", n, "--out", str(tmp_path / n)).returncode == 0
    one = {r["key"]: r["curve"] for r in records(tmp_path / "1")}
    two = {r["key"]: r["curve"] for r in records(tmp_path / "2")}
    assert one.keys() == two.keys()
    for key in one:
        assert [p["loss"] for p in one[key]] == [p["loss"] for p in two[key]]


def test_resume_reruns_corrupt_and_optionally_failed_cells(
    installed_packages: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Which cells a resume reruns is the runner's choice, whatever runs them: the three
    # commands run in this process, cells inline, with the fault plugin on the path.
    monkeypatch.syspath_prepend(str(installed_packages))
    monkeypatch.setenv("HARNESS_PLUGINS", "harness,harness-faultplugin")
    out = tmp_path / "run"
    assert main(["run", "-m", "regression,fault-raise", "-o", "sgd", "-s", "0-1",
                 "--steps", "20", "--workers", "0", "--out", str(out), "--quiet"]) \
        == EXIT_CELLS_FAILED
    files = sorted((out / "cells").glob("regression-*.json"))
    files[0].write_text(files[0].read_text()[:50])  # a truncated record
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "--workers", "0", "--quiet"]) \
        == EXIT_CELLS_FAILED  # the failed cells it keeps
    again = capsys.readouterr()
    assert "is corrupt (it is not valid JSON); its cell runs again" in again.err
    assert "(3 already done)" in again.out  # the two failed cells are kept
    main(["run", "--resume", str(out), "--rerun-failed", "--workers", "0", "--quiet"])
    assert "(2 already done)" in capsys.readouterr().out
    assert len(records(out)) == 4


def test_plan_is_by_content_key_not_axis_order(host: PluginHost, tmp_path: Path) -> None:
    from harness.results import write_json_atomic

    spec = GridSpec(models=["regression", "classification"], optimizers=["sgd", "adam"],
                    seeds=[0, 1], steps=5)
    grid = expand(spec, host.problems, host.optimizers)
    run_dir = RunDirectory(tmp_path)
    for cell in grid.cells[:3]:
        write_json_atomic(run_dir.cells_dir / f"{cell.cell_id}.json",
                          {"cell_id": cell.cell_id, "key": cell.key, "cell": cell.to_dict(),
                           "status": "ok", "summary": {}, "curve": []})
    reordered = GridSpec(models=["classification", "regression"], optimizers=["adam", "sgd"],
                         seeds=[1, 0], steps=5)
    todo = plan(expand(reordered, host.problems, host.optimizers), run_dir,
                rerun_failed=False).todo
    assert len(todo) == len(grid.cells) - 3
    assert not {c.key for c in todo} & {c.key for c in grid.cells[:3]}


def test_resume_refuses_grid_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["run", "--resume", str(tmp_path), "-m", "cnn"]) == 2
    assert "--models cannot be given with it" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "holds no harness run to resume" in capsys.readouterr().err


def _wait_for_records(out: Path, n: int, proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    wait_for(lambda: len(list((out / "cells").glob("*.json"))) >= n, f"{n} records", proc=proc)



@pytest.mark.long
def test_deterministic_flag_in_workers_and_inline(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # --deterministic sets CUBLAS_WORKSPACE_CONFIG in the process: put it back after the test
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    for workers in ("1", "0"):
        out = tmp_path / workers
        args = ["run", "-m", "cnn", "-o", "adam", "-s", "0", "--steps", "6",
                "--deterministic", "--workers", workers, "--out", str(out), "--quiet"]
        if workers == "0":  # inline: the cell runs in the process that calls main
            assert main(args) == 0
        else:
            proc = run_cli(*args)
            assert proc.returncode == 0, proc.stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["options"]["execution"]["deterministic"] is True
        assert pd.read_csv(out / "summary.csv")["status"].tolist() == ["ok"]


def test_cell_file_names_stay_inside_the_run(host: PluginHost) -> None:
    import re

    from harness.cell import Cell

    cell = Cell(problem="regression", optimizer="sgd", device="cuda:1", seed=3, steps=1,
                batch_size=1, params=(("activation", "../../etc/passwd"),))
    assert re.fullmatch(r"[A-Za-z0-9._-]+", cell.cell_id) and "/" not in cell.cell_id
    assert not cell.cell_id.startswith(".")


@pytest.mark.long
def test_max_memory_is_what_a_cell_may_allocate_beyond_its_worker(fault_env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    # A worker maps some 3.5 GB after importing torch: 500 MiB counts from there, so small
    # cells (adam's first step imports torch._dynamo) run, and a cell that keeps allocating
    # is stopped by the limit and recorded as oom, its worker serving the next cells.
    out = tmp_path / "memory"
    proc = run_cli("run", "-m", "fault-memory,regression,classification", "-o", "adam", "-s",
                   "0", "--steps", "40", "--workers", "1", "--max-memory-mb", "500",
                   "--out", str(out), "--quiet", env=fault_env, cwd=tmp_path)
    assert proc.returncode == EXIT_CELLS_FAILED, proc.stderr
    recs = {r["cell"]["problem"]: r for r in records(out)}
    assert {p: r["status"] for p, r in recs.items()} == {
        "fault-memory": "oom", "regression": "ok", "classification": "ok"}, \
        {p: r["error"] for p, r in recs.items()}
    assert "can't allocate memory" in recs["fault-memory"]["error"]


@pytest.mark.long
def test_the_memory_limit_counts_from_the_process_size_and_can_be_put_back() -> None:
    # In a child: the limit is set on the process that calls it.
    code = """if True:
        import resource, sys
        from harness.run.execute import limit_memory
        previous = limit_memory(300)
        assert "torch._dynamo" in sys.modules  # imported before the limit, not under it
        within = bytearray(200 * 2**20)
        del within
        try:
            bytearray(400 * 2**20)
            print("not limited")
        except MemoryError:
            print("limited")
        resource.setrlimit(resource.RLIMIT_AS, previous)
        bytearray(400 * 2**20)
        print("put back")
    """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["limited", "put", "back"]


def _processes_with(tag: str) -> list[int]:
    """The processes whose command line holds ``tag``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if tag.encode() in (proc / "cmdline").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_timed_out_cell_leaves_no_process_behind(fault_env: dict[str, str],
                                                   tmp_path: Path) -> None:
    """The cell starts a child (as a data loader's workers or a simulator would) and hangs:
    the timeout kills the worker's whole process group, the child with it."""
    import os
    import uuid

    tag = f"harness-sleeper-{uuid.uuid4().hex}"
    out = tmp_path / "run"
    try:
        proc = run_cli("run", "-m", "fault-fork", "-o", "adam", "-s", "0", "--steps", "40",
                       "--set", f"fault-fork.tag={tag}", "--workers", "1", "--timeout", "5",
                       "--out", str(out), "--quiet", env=fault_env, cwd=tmp_path, timeout=300)
        assert proc.returncode == EXIT_CELLS_FAILED, proc.stderr
        assert [r["status"] for r in records(out)] == ["timeout"]
        wait_for(lambda: not _processes_with(tag), "the end of the cell's child", timeout=15)
    finally:
        for pid in _processes_with(tag):
            os.kill(pid, signal.SIGKILL)
