"""The dask executor on a real LocalCluster: same results, lost workers, timeouts.

A module-wide cluster of 2 worker processes stands in for a remote one (the CLI is
given its address); the timeout test lets the executor start its own cluster.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from harness_builtins.dask_executor import (
    LOCAL_CLUSTER_CONFIG,
    DaskSettings,
    parse_settings,
    version_mismatch,
)

from harness import __version__
from harness.cell import Cell
from harness.errors import UsageError
from harness.executor import CellLimits
from harness.outcome import EXIT_CELLS_FAILED
from harness.plugins import PluginHost
from tests.helpers import pythonpath, run_cli

pytestmark = pytest.mark.slow


def _have_distributed() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise  # CI installs .[dev], which brings dask: it must run there
        return False
    return True


needs_dask = pytest.mark.skipif(not _have_distributed(),
                                reason="dask[distributed] is not installed "
                                       "(pip install 'harness[dask]')")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A LocalCluster of 2 worker processes configured as the executor's own."""
    if not _have_distributed():
        pytest.skip("dask[distributed] is not installed (pip install 'harness[dask]')")
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(LOCAL_CLUSTER_CONFIG), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0") as local, Client(local) as client:
        yield client


def records(out: Path) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in (json.loads(p.read_text())
                                  for p in (out / "cells").glob("*.json"))}


def _curve(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The curve without its clock readings (``elapsed_s``...): losses and metrics."""
    return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in record["curve"]]


def test_same_results_as_the_local_executor(cluster: Any, tmp_path: Path) -> None:
    grid = ["-m", "regression,classification", "-o", "sgd,adam", "-s", "0-1", "--steps", "30",
            "--quiet"]
    local = run_cli("run", *grid, "--workers", "1", "--out", str(tmp_path / "local"),
                    cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    remote = run_cli("run", *grid, "--executor", "dask", "--scheduler", cluster.scheduler.address,
                     "--out", str(tmp_path / "dask"), cwd=tmp_path)
    assert remote.returncode == 0, remote.stderr
    a, b = records(tmp_path / "local"), records(tmp_path / "dask")
    assert len(a) == 8 and a.keys() == b.keys()
    for key, rec in a.items():
        assert b[key]["status"] == rec["status"] == "ok"
        assert b[key]["summary"]["final_loss"] == rec["summary"]["final_loss"]
        assert _curve(b[key]) == _curve(rec)


def _processing(client: Any) -> dict[str, list[str]]:
    """Our cells' tasks by the worker running them."""
    return {worker: [str(k) for k in keys if "harness-cell" in str(k)]
            for worker, keys in client.processing().items()}


def _wait(what: str, until: Callable[[], Any], proc: subprocess.Popen[str],
          timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = until()
        if value:
            return value
        assert proc.poll() is None, f"the run ended while waiting for {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _running(client: Any, proc: subprocess.Popen[str], count: int,
             only: str | None = None) -> dict[str, str]:
    """Wait until ``count`` cells (or cell ``only``) are running: {worker: cell}."""
    def found() -> dict[str, str] | None:
        now = _processing(client)
        assert all(len(keys) <= 1 for keys in now.values()), f"one cell per worker: {now}"
        busy = {w: keys[0] for w, keys in now.items() if keys and only in (None, keys[0])}
        return busy if len(busy) >= count else None

    running: dict[str, str] = _wait(f"{count} running cells", found, proc)
    return running


def _kill(client: Any, workers: list[str], proc: subprocess.Popen[str]) -> None:
    """SIGKILL these workers' processes and wait until the scheduler has noticed."""
    pids = client.run(os.getpid, workers=workers)
    for worker in workers:
        os.kill(pids[worker], signal.SIGKILL)
    _wait("the scheduler to notice", lambda: not set(workers) & set(client.processing()), proc)


@pytest.mark.long
def test_a_lost_worker_is_retried_once_then_recorded(cluster: Any, tmp_path: Path) -> None:
    out = tmp_path / "lost"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "-m", "regression", "-o", "sgd,adam",
         "-s", "0-2", "--steps", "2500", "--executor", "dask", "--scheduler",
         cluster.scheduler.address, "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("w"), text=True,
        cwd=tmp_path)
    try:
        # Both workers die mid-cell: both cells are retried on the restarted workers...
        first = _running(cluster, proc, 2)
        _kill(cluster, list(first), proc)
        once, twice = sorted(first.values())
        # ...where one of them loses its worker again: "worker lost", the other finishes.
        second = _running(cluster, proc, 1, only=twice)
        assert not set(second) & set(first)
        _kill(cluster, list(second), proc)
        proc.wait(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == EXIT_CELLS_FAILED, (tmp_path / "stderr").read_text()[-3000:]
    recs = list(records(out).values())
    assert len(recs) == 6
    lost = [r for r in recs if r["status"] != "ok"]
    assert len(lost) == 1 and lost[0]["status"] == "error", [r["error"] for r in lost]
    assert lost[0]["error"].startswith("worker lost: "), lost[0]["error"]
    assert "died 2 times" in lost[0]["error"]
    log = cluster.run_on_scheduler(
        lambda dask_scheduler: [(str(t[0]), t[2]) for t in dask_scheduler.transition_log])
    assert sum(1 for k, state in log if k == once and state == "processing") >= 2


@pytest.fixture
def fault_env(installed_packages: Path) -> dict[str, str]:
    return {"PYTHONPATH": pythonpath(installed_packages),
            "HARNESS_PLUGINS": "harness,harness-faultplugin"}


@pytest.mark.long
@needs_dask
def test_timeout_and_crash_statuses_on_a_cluster_it_starts(fault_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    out = tmp_path / "faults"
    proc = run_cli("run", "-m", "fault-hang,fault-abort,regression", "-o", "adam", "-s", "0",
                   "--steps", "40", "--timeout", "6", "--executor", "dask",
                   "--executor-option", "n_workers=2", "--out", str(out), "--quiet",
                   env=fault_env, cwd=tmp_path)
    assert proc.returncode == EXIT_CELLS_FAILED, proc.stderr
    assert f"exit code {EXIT_CELLS_FAILED} (--fail-on none" in proc.stderr
    recs = {r["cell"]["problem"]: r for r in records(out).values()}
    assert {p: r["status"] for p, r in recs.items()} == {
        "fault-hang": "timeout", "fault-abort": "error", "regression": "ok"}
    assert "6 s timeout" in recs["fault-hang"]["error"]
    assert recs["fault-hang"]["curve"], "the curve up to the timeout is recorded"
    # killed at its timeout (the cell hangs for ever), however slow the machine is
    assert 6 <= recs["fault-hang"]["summary"]["wall_s"] < 60
    assert "SIGABRT" in recs["fault-abort"]["error"]


def test_a_plugin_missing_on_the_workers_is_named(cluster: Any, fault_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    # The cluster's workers were started without the fault plugin; the client has it.
    out = tmp_path / "missing"
    proc = run_cli("run", "-m", "fault-raise", "-o", "adam", "-s", "0", "--steps", "10",
                   "--executor", "dask", "--scheduler", cluster.scheduler.address,
                   "--out", str(out), "--quiet", env=fault_env, cwd=tmp_path)
    assert proc.returncode == EXIT_CELLS_FAILED, proc.stderr
    (rec,) = records(out).values()
    assert rec["status"] == "error"
    assert "'fault-raise' is not installed on this worker" in rec["error"]
    assert "harness-faultplugin" in rec["error"]
    assert "pickl" not in rec["error"].lower()


def test_without_distributed_the_error_says_how_to_install(tmp_path: Path) -> None:
    # sys.modules[name] = None makes `import name` fail, as if it were not installed.
    code = ("import sys; sys.modules['distributed'] = None; "
            "from harness.cli import main; raise SystemExit(main())")
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", "-m", "regression", "-o", "sgd", "--steps", "5",
         "--executor", "dask", "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: the dask executor needs dask[distributed]: pip install 'harness[dask]'"]
    assert not (tmp_path / "out" / "cells").exists() or \
        not any((tmp_path / "out" / "cells").iterdir())


@pytest.mark.parametrize(("settings", "message"), [
    ({"scheduler": "tcp://h:1", "n_workers": "2"}, "n_workers is for the local cluster"),
    ({"n_workers": "zero"}, "n_workers: expected a whole number"),
    ({"shared_filesystem": "maybe"}, "expected true or false"),
    ({"n_workers": "0"}, "--workers 0 runs cells inline"),
    ({"scheduler": "garbage"}, "'garbage': expected a Dask scheduler address"),
    ({"scheduler": "tcp://h"}, "'tcp://h': expected a Dask scheduler address"),
    ({"scheduler": "tcp://h:99999"}, "expected a Dask scheduler address"),
    ({"scheduler": "http://h:1"}, "unknown scheme 'http'"),
    ({"scheduler": "inproc://h/1/2"}, "only reachable from the process that made it"),
])
def test_bad_settings_are_usage_errors(settings: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_settings(settings, CellLimits())


@pytest.mark.parametrize("option", ["n_workers=abc", "scheduler=garbage"])
def test_a_dry_run_checks_the_executor_settings(option: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(["run", "-m", "regression", "--executor", "dask", "--executor-option", option,
                 "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness: error: ")
    assert "Traceback" not in err[0]


def test_pin_cpus_is_for_the_local_executor() -> None:
    with pytest.raises(UsageError, match="--pin-cpus places the local executor's workers"):
        parse_settings({"pin_cpus": "true"}, CellLimits())


def test_cuda_mps_is_for_the_local_executor() -> None:
    with pytest.raises(UsageError, match="for Dask workers, start nvidia-cuda-mps-control"):
        parse_settings({"cuda_mps": "true"}, CellLimits())


def test_settings_default_to_the_local_workers() -> None:
    """Without n_workers (--workers), the local cluster gets the local executor's default:
    the CPUs this process may use over --threads."""
    cpus = len(os.sched_getaffinity(0))
    assert parse_settings({}, CellLimits()) == DaskSettings(n_workers=cpus)
    assert parse_settings({}, CellLimits(threads=cpus + 1)) == DaskSettings(n_workers=1)
    assert parse_settings({"n_workers": "3"}, CellLimits()) == DaskSettings(n_workers=3)
    parsed = parse_settings({"scheduler": "tcp://h:1", "shared_filesystem": "yes"},
                            CellLimits())
    assert parsed.scheduler == "tcp://h:1" and parsed.shared_filesystem


def test_a_worker_with_other_plugin_versions_refuses_the_cell() -> None:
    def cell(versions: dict[str, str]) -> Cell:
        return Cell("regression", "sgd", "cpu", 0, 10, 8, versions=tuple(sorted(versions.items())))

    same = {"harness": __version__, "problem": f"harness {__version__}", "optimizer": "in-process"}
    assert version_mismatch(cell(same)) is None
    assert version_mismatch(cell({**same, "problem": "harness-not-installed 1.0"})) is None
    message = version_mismatch(cell({**same, "problem": "harness 0.0.1"}))
    assert message is not None and f"harness {__version__} is installed" in message
    assert "planned with harness 0.0.1" in message


def test_dask_is_a_builtin_executor_plugin(host: PluginHost) -> None:
    spec = host.executors.get("dask")
    assert host.executors.owner("dask").name == "builtin-dask"
    assert {"scheduler", "n_workers", "shared_filesystem"} <= set(spec.settings)


def _clients(cluster: Any) -> set[str]:
    return set(cluster.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))


def test_the_scheduler_is_reached_when_the_executor_is_built_and_let_go_after(
    cluster: Any, host: PluginHost,
) -> None:
    from harness.executor import ExecutorContext, RunOptions

    before = _clients(cluster)
    context = ExecutorContext(resolve=lambda c: (None, None, {}),  # type: ignore[arg-type,return-value]
                              settings={"scheduler": cluster.scheduler.address})
    for drop in ("run nothing", "never run"):
        executor = host.executors.get("dask").factory(CellLimits(), RunOptions(), context)
        assert len(_clients(cluster) - before) == 1  # connected, before any run
        if drop == "run nothing":
            executor.run([], lambda c: None, lambda c, r, s: None, lambda r: None)
        del executor  # a runner that failed after building it (its --out, say)
        _wait_here("the client to leave", lambda: _clients(cluster) == before)


def _wait_here(what: str, until: Callable[[], Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _refused_address() -> tuple[socket.socket, str]:
    """An address that refuses connections: a port bound (so no one else takes it) that
    nobody listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@needs_dask
def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    sock, address = _refused_address()
    with sock:
        proc = run_cli("run", "-m", "regression", "-o", "sgd", "--steps", "5", "--executor",
                       "dask", "--executor-option", f"scheduler={address}",
                       "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path, timeout=120,
                       env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"harness: error: cannot reach the Dask scheduler at {address}: Timed out trying to "
        f"connect to {address} after 2 s"]
    assert list(tmp_path.iterdir()) == []


@needs_dask
def test_a_malformed_scheduler_address_fails_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "--steps", "5", "--executor", "dask",
                   "--executor-option", "scheduler=garbage", "--out", str(tmp_path / "out"),
                   "--quiet", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: scheduler 'garbage': expected a Dask scheduler address like "
        "tcp://HOST:8786"]
    assert time.monotonic() - started < 30  # no connection attempt, no hang at exit
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_out_after_connecting_is_one_line(cluster: Any, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n")
    before = _clients(cluster)
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "--steps", "5", "--executor", "dask",
                   "--scheduler", cluster.scheduler.address, "--out", "afile/sub", "--quiet",
                   cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: cannot write afile/sub: Not a directory"]
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]
    _wait_here("the client to leave", lambda: _clients(cluster) == before)


@needs_dask
def test_a_scheduler_address_dask_cannot_connect_to_is_one_line_at_once(tmp_path: Path) -> None:
    # tls:// without TLS certificates configured: Dask's Client fails with a TypeError
    # (not an OSError), and the half-made client it leaves behind used to be closed at
    # the interpreter's exit: twice the connect timeout later, with a traceback.
    started = time.monotonic()
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "--steps", "5", "--executor", "dask",
                   "--scheduler", "tls://127.0.0.1:8786", "--out", str(tmp_path / "out"),
                   "--quiet", cwd=tmp_path, timeout=120,
                   env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "10"})
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith("harness: error: cannot reach the Dask scheduler at "
                             "tls://127.0.0.1:8786: ")
    assert time.monotonic() - started < 10
    assert list(tmp_path.iterdir()) == []


@needs_dask
def test_a_peer_that_never_answers_is_one_line_after_the_connect_timeout(tmp_path: Path) -> None:
    # A port that accepts connections but never answers Dask's handshake: the scheduler's
    # dashboard port (8787 for 8786), a stopped scheduler. Dask times out the connection,
    # not the handshake, and the run used to wait forever.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel accepts; nobody reads or answers
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
        started = time.monotonic()
        proc = run_cli("run", "-m", "regression", "-o", "sgd", "--steps", "5", "--executor",
                       "dask", "--scheduler", address, "--out", str(tmp_path / "out"),
                       "--quiet", cwd=tmp_path, timeout=120,
                       env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"harness: error: cannot reach the Dask scheduler at {address}: no Dask scheduler "
        "answered there within 4 s"]
    assert time.monotonic() - started < 30
    assert list(tmp_path.iterdir()) == []


def _scheduler_process(file: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A ``dask scheduler`` process on a free local port, and its address once it listens."""
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        _wait_here("the scheduler", file.exists, timeout=60)
        time.sleep(0.5)  # the file is written as it starts listening
        return scheduler, json.loads(file.read_text())["address"]
    except BaseException:
        scheduler.kill()
        scheduler.wait()
        raise


def _run_on(address: str, out: Path, *grid: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``harness run`` of ``grid`` on the scheduler at ``address``, its stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", *grid, "--executor", "dask", "--scheduler",
         address, "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=out.parent)


@pytest.mark.long
@needs_dask
def test_a_scheduler_that_stops_answering_mid_run_ends_the_run(tmp_path: Path) -> None:
    # A suspended scheduler (a hung host) keeps its connections open: Dask's client waited
    # for the grid's cells forever. No workers: the cells wait for one, as on a busy cluster.
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2"}
    scheduler, address = _scheduler_process(tmp_path / "scheduler.json", env)
    proc: subprocess.Popen[str] | None = None
    try:
        proc = _run_on(address, tmp_path / "out", "-m", "regression", "-o", "sgd", "--steps",
                       "5", env=env)
        _wait_here("the run to start", (tmp_path / "out" / "manifest.json").exists, timeout=60)
        time.sleep(1)
        scheduler.send_signal(signal.SIGSTOP)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc is not None:
            proc.kill()
        scheduler.send_signal(signal.SIGCONT)
        scheduler.kill()
        scheduler.wait()
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        f"harness: error: the Dask scheduler at {address} stopped answering (no Dask scheduler "
        "answered there within 4 s); finished cells are kept, resume with --resume"]


@pytest.mark.long
@needs_dask
def test_ctrl_c_on_its_own_cluster_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group, the LocalCluster's workers
    too: the run stops with its one line, no worker traceback or Dask shutdown warning,
    and no process of the group is left."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "-m", "regression,cnn", "-o", "sgd,adam",
         "-s", "0-3", "--steps", "400", "--executor", "dask", "--executor-option",
         "n_workers=2", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any((out / "cells").glob("*.json")):  # the cluster is up and running
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted by SIGINT" in lines[0], err
    deadline = time.monotonic() + 10
    while True:  # the workers are gone with the run
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the run are left"
        time.sleep(0.2)


@pytest.mark.long
@needs_dask
def test_a_scheduler_that_exits_mid_run_is_one_line_and_keeps_the_finished_cells(
    tmp_path: Path,
) -> None:
    # Dask's client logged its failed reconnection as a 30-line traceback before the run's
    # line, and the run ended without rebuilding summary.csv from the cells it had finished.
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2",
           "DASK_DISTRIBUTED__WORKER__DAEMON": "False", "OMP_NUM_THREADS": "1"}
    file = tmp_path / "scheduler.json"
    out = tmp_path / "out"
    scheduler, address = _scheduler_process(file, env)
    worker: subprocess.Popen[bytes] | None = None
    proc: subprocess.Popen[str] | None = None
    try:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(file),
             "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
        proc = _run_on(address, out, "-m", "regression", "-o", "sgd", "-s", "0-19", "--steps",
                       "400", env=env)
        _wait_here("a finished cell", lambda: any((out / "cells").glob("*.json")), timeout=120)
        scheduler.kill()
        _, err = proc.communicate(timeout=60)
    finally:
        for p in (proc, worker, scheduler):
            if p is not None:
                p.kill()
                p.wait()
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"harness: error: the Dask scheduler at {address} went away (")
    assert lines[0].endswith("finished cells are kept, resume with --resume")
    done = sorted(p.stem for p in (out / "cells").glob("*.json"))
    assert 1 <= len(done) < 20
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["cell_id"]) == done


@needs_dask
def test_the_client_log_held_back_during_a_run_is_handed_on_unless_the_scheduler_went_away(
) -> None:
    import logging

    from harness_builtins.dask_executor import SchedulerLost, _client_log_withheld

    logger = logging.getLogger("distributed.client")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        with _client_log_withheld():
            logger.error("kept")
            assert seen == []  # not while the run goes on
        assert seen == ["kept"]
        with pytest.raises(SchedulerLost), _client_log_withheld():
            logger.error("dropped: the run's own line says why")
            raise SchedulerLost("gone")
        assert seen == ["kept"]
        logger.error("after")
        assert seen == ["kept", "after"]
    finally:
        logger.removeHandler(handler)


def test_plugin_files_reach_the_dask_workers(cluster: Any, tmp_path: Path) -> None:
    """The cluster's workers were started before the run named the file: the tasks carry it."""
    from tests.helpers import SIGN_SGD

    (tmp_path / "sign_sgd.py").write_text(SIGN_SGD)
    result = run_cli("run", "-m", "regression", "-o", "signsgd", "-s", "0-1", "--steps", "20",
                     "--quiet", "--plugin", "sign_sgd.py", "--executor", "dask", "--scheduler",
                     cluster.scheduler.address, "--out", "r", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    done = records(tmp_path / "r")
    assert len(done) == 2 and all(r["status"] == "ok" for r in done.values()), \
        [r.get("error") for r in done.values()]


@pytest.mark.parametrize("change", ["edited", "removed"])
def test_a_plugin_file_runs_on_the_workers_as_the_client_loaded_it(
        cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """The workers get the file's source, not its path: after the client loaded it, the
    file is edited (other code at the same path) or removed, as on a worker of another
    machine, and the cells still run the bytes the manifest hashed."""
    import hashlib

    from harness.executor import PLUGIN_FILES_ENV, RunOptions
    from harness.grid import GridSpec, expand
    from harness.plugins import get_host, reset_host
    from harness.run.runner import RunRequest, run_grid
    from tests.helpers import SIGN_SGD

    plugin = tmp_path / "exp" / "sign_sgd.py"
    plugin.parent.mkdir()
    plugin.write_text(SIGN_SGD)
    monkeypatch.setenv(PLUGIN_FILES_ENV, str(plugin))
    reset_host()
    host = get_host()
    grid = expand(GridSpec(models=["regression"], optimizers=["signsgd"], seeds=[0, 1],
                           steps=20), host.problems, host.optimizers)
    if change == "edited":  # a worker reading the path would run this
        plugin.write_text(SIGN_SGD.replace(
            "    @torch.no_grad()", "    def __init__(self, *args, **kwargs):\n"
            "        raise RuntimeError('the edited file ran')\n\n    @torch.no_grad()"))
    else:
        plugin.parent.rename(tmp_path / "elsewhere")
    out = tmp_path / "r"
    run_grid(RunRequest(grid, out, RunOptions(windows=2), executor="dask",
                        executor_settings={"scheduler": cluster.scheduler.address},
                        progress=False), host)
    reset_host()
    done = records(out)
    assert len(done) == 2 and all(r["status"] == "ok" for r in done.values()), \
        [r.get("error") for r in done.values()]
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(p for p in manifest["plugins"] if p.get("source") == str(plugin))
    assert entry["sha256"] == "sha256:" + hashlib.sha256(SIGN_SGD.encode()).hexdigest()
