"""--cuda-mps: the private MPS daemon's lifecycle.

This machine has no NVIDIA driver, so these tests put a stand-in for
``nvidia-cuda-mps-control`` on PATH: a small script that speaks the same commands
(``-f`` runs in the foreground until told ``quit``; ``get_server_list``,
``get_client_list PID`` and ``quit`` read from stdin). They check what the harness
itself must get right: the daemon is up before workers start, answers are parsed, a
failing start is one line naming the cause, and nothing is left behind, not even a
daemon that ignores ``quit``. tests/test_gpu.py runs packed workers under the real
daemon on a GPU machine.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.run import cuda_mps

STANDIN = '''#!{python}
import os, pathlib, sys, time
pipe = pathlib.Path(os.environ["CUDA_MPS_PIPE_DIRECTORY"])
mode = os.environ.get("STANDIN_MODE", "")
if sys.argv[1:] == ["-f"]:
    if mode == "fail":
        print("cannot open /dev/nvidiactl", flush=True)
        sys.exit(1)
    (pipe / "control").write_text("")
    (pipe / "daemon.pid").write_text(str(os.getpid()))
    while mode == "hang" or not (pipe / "quit").exists():
        time.sleep(0.02)
    sys.exit(0)
if not (pipe / "control").exists():
    print("Cannot find MPS control daemon process", file=sys.stderr)
    sys.exit(1)
words = sys.stdin.read().split()
if words[0] == "get_server_list":
    print(4242)
elif words[:2] == ["get_client_list", "4242"]:
    print("\\n".join(os.environ.get("STANDIN_CLIENTS", "").split()))
elif words[0] == "quit":
    (pipe / "quit").write_text("")
else:
    sys.exit(1)
'''


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / cuda_mps.CONTROL
    script.write_text(STANDIN.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    monkeypatch.setattr(cuda_mps, "STOP_S", 2.0)
    return script


def _alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_without_the_control_program_the_error_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cuda_mps, "_SEARCH", (str(tmp_path),))
    assert cuda_mps.find_control() is None
    with pytest.raises(UsageError, match="--cuda-mps: nvidia-cuda-mps-control was not found"):
        cuda_mps.require_control()


def test_private_daemon_starts_answers_and_is_gone_after(
    standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_CLIENTS", "101 102")
    with cuda_mps.daemon() as session:
        assert session.owned
        assert session.control == str(standin)
        env = session.env()
        assert Path(env["CUDA_MPS_PIPE_DIRECTORY"], "control").exists()
        assert Path(env["CUDA_MPS_LOG_DIRECTORY"]).is_dir()
        assert session.servers() == [4242]
        assert session.clients() == {101, 102}
        pid = int((session.pipe_dir / "daemon.pid").read_text())
        assert _alive(pid)
        root = session.pipe_dir.parent
    assert not _alive(pid)
    assert not root.exists()


def test_a_daemon_that_ignores_quit_is_killed(
    standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "hang")
    with cuda_mps.daemon() as session:
        pid = int((session.pipe_dir / "daemon.pid").read_text())
    assert not _alive(pid)
    assert not session.pipe_dir.parent.exists()


def test_a_daemon_that_cannot_start_is_one_line_with_its_log(
    standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_MODE", "fail")
    with pytest.raises(cuda_mps.MPSError) as info, cuda_mps.daemon():
        pytest.fail("the block must not run")
    message = str(info.value)
    assert "exited with code 1 as it started" in message
    assert "cannot open /dev/nvidiactl" in message
    assert "\n" not in message


def test_a_daemon_already_answering_is_used_and_left_running(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cuda_mps.daemon() as outer:
        monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", str(outer.pipe_dir))
        with cuda_mps.daemon() as inner:
            assert not inner.owned
            assert inner.pipe_dir == outer.pipe_dir
        assert not (outer.pipe_dir / "quit").exists()  # the inner one sent no quit
        assert inner.servers() == [4242]


def test_a_gpu_worker_that_is_not_a_client_stops_the_run(
    standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.executor import CellLimits, RunOptions
    from harness.run.pool import Worker, WorkerPool

    monkeypatch.setenv("STANDIN_CLIENTS", "101")
    with cuda_mps.daemon() as session:
        pool = WorkerPool(CellLimits(), RunOptions(), mps=session)
        pool._check_client(Worker(process=None, conn=None, device="cuda:0", pid=101))
        pool._check_client(Worker(process=None, conn=None, device="cpu", pid=7))
        with pytest.raises(cuda_mps.MPSError, match=r"the worker on cuda:0 \(pid 7\) is not a "
                                                    "client of the MPS server"):
            pool._check_client(Worker(process=None, conn=None, device="cuda:0", pid=7))


def test_the_daemon_does_not_outlive_a_killed_harness(standin: Path, tmp_path: Path) -> None:
    """SIGKILL leaves no cleanup to run: the daemon must still go (parent-death signal)."""
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys, time\n"
            "from harness.run import cuda_mps\n"
            "with cuda_mps.daemon() as s:\n"
            "    print(s.pipe_dir.parent, flush=True)\n"
            "    print((s.pipe_dir / 'daemon.pid').read_text(), flush=True)\n"
            "    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    root = Path(holder.stdout.readline().strip())
    try:
        assert root.name.startswith("harness-mps-")
        pid = int(holder.stdout.readline())
        assert _alive(pid)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:  # SIGKILL left no cleanup to run: the daemon's directory is the test's to remove
        holder.kill()
        holder.wait()
        shutil.rmtree(root, ignore_errors=True)
    assert not root.exists()


def test_a_gpu_worker_that_never_attaches_stops_the_run(
    standin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attach can hang while the daemon still answers: the wait for it is bounded."""
    import multiprocessing as mp
    import time

    from harness.executor import CellLimits, RunOptions
    from harness.run.pool import Worker, WorkerPool

    monkeypatch.setattr(cuda_mps, "ATTACH_S", 0.5)
    parent, child = mp.Pipe()
    silent = mp.get_context("spawn").Process(target=time.sleep, args=(30,))
    silent.start()
    try:
        with cuda_mps.daemon() as session:
            pool = WorkerPool(CellLimits(), RunOptions(), mps=session)
            pool._workers.append(Worker(process=silent, conn=parent, device="cuda:0"))
            t0 = time.monotonic()
            with pytest.raises(cuda_mps.MPSError,
                               match="a worker on cuda:0 did not attach to the MPS server "
                                     r"within 0\.5 s"):
                while time.monotonic() - t0 < 10:
                    pool.wait()
    finally:
        silent.kill()
        silent.join()
        child.close()


def test_packing_cuda_cells_without_mps_hints_at_it_where_the_machine_has_it(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.cli.run import _mps_would_help
    from harness.run.workers import LocalSettings

    packed = LocalSettings(workers=2, workers_per_device=8)
    assert _mps_would_help(packed, ["cpu", "cuda"], {})
    # Nothing to hint: one worker per GPU, no GPU in the grid, the GPU skipped as
    # unavailable, no worker processes, or an executor that places its own workers.
    assert not _mps_would_help(LocalSettings(workers=2), ["cuda"], {})
    assert not _mps_would_help(packed, ["cpu"], {})
    assert not _mps_would_help(packed, ["cuda"], {"cuda": "no CUDA"})
    assert not _mps_would_help(LocalSettings(workers=0, workers_per_device=8), ["cuda"], {})
    assert not _mps_would_help(None, ["cuda"], {})
    # A machine without the control program gets no hint.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(cuda_mps, "_SEARCH", (str(tmp_path),))
    assert not _mps_would_help(packed, ["cuda"], {})
