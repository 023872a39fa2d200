"""How the local pool's workers start: CPU workers forked from the run or from the fork
server (torch, ``torch._dynamo`` and the plugins already loaded) give the same numbers as
spawned ones, and GPU workers are always spawned."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import UsageError
from harness.executor import CellLimits, RunOptions
from harness.run.pool import WorkerPool
from harness.run.start import ENV_START, fork_server, start_method
from tests.helpers import run_cli


def test_cpu_workers_fork_and_gpu_workers_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    assert not torch.cuda.is_initialized()
    monkeypatch.delenv(ENV_START, raising=False)
    assert start_method("cpu") == "fork"
    assert start_method("cuda") == "spawn"
    assert start_method("cuda:1") == "spawn"
    monkeypatch.setenv(ENV_START, "spawn")
    assert start_method("cpu") == "spawn"
    monkeypatch.setenv(ENV_START, "forkserver")
    assert start_method("cpu") == "forkserver"
    assert start_method("cuda") == "spawn"
    monkeypatch.setenv(ENV_START, "vfork")
    with pytest.raises(UsageError, match="HARNESS_WORKER_START must be one of fork, "
                                         "forkserver, spawn, not 'vfork'"):
        start_method("cpu")


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_in_a_fork_server_block_cpu_workers_start_from_the_server(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``harness run``'s block: the server starts, a CPU worker is its child (not this
    process's); after the block, CPU workers fork from here again. (That the worker
    takes the run's environment, not the server's, is checked end to end by
    test_plugin_files: ``harness run`` sets ``HARNESS_PLUGIN_FILES`` after the server
    started, and the plugin's optimizer still runs in the worker.)"""
    from multiprocessing import forkserver

    monkeypatch.delenv(ENV_START, raising=False)
    with fork_server() as started:
        assert started
        assert start_method("cpu") == "forkserver"
        assert start_method("cuda") == "spawn"
        pool = WorkerPool(CellLimits(), RunOptions())
        try:
            worker = pool.start("cpu")
            while not worker.ready:
                pool.wait(1.0)
            assert worker.pid is not None
            server = forkserver._forkserver._forkserver_pid  # type: ignore[attr-defined]
            assert _parent_pid(worker.pid) == server != os.getpid()
        finally:
            pool.shutdown()
    assert start_method("cpu") == "fork"


@pytest.mark.long
@pytest.mark.slow
def test_forked_and_spawned_workers_give_bit_identical_cells(tmp_path: Path) -> None:
    frames = {}
    for how in ("fork", "forkserver", "spawn"):
        out = tmp_path / how
        proc = run_cli("run", "-m", "regression,classification", "-o", "sgd,adam", "-s", "0",
                       "--steps", "30", "--workers", "2", "--out", str(out), "--quiet",
                       env={ENV_START: how})
        assert proc.returncode == 0, proc.stderr
        curves = pd.read_parquet(out / "curves.parquet")
        frames[how] = curves.drop(columns=["elapsed_s"]).sort_values(
            ["cell_id", "step"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(frames["fork"], frames["spawn"])
    pd.testing.assert_frame_equal(frames["forkserver"], frames["spawn"])


@pytest.mark.slow
def test_a_bad_start_method_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "5",
                   "--out", str(tmp_path / "r"), "--quiet", env={ENV_START: "vfork"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "harness: error: HARNESS_WORKER_START must be one of fork, forkserver, spawn, "
        "not 'vfork'"]


#: What both interrupted-pool scripts begin with: a pool, and SIGTERM raising ``Stop`` (as
#: the driver's handler raises its Interrupted).
_SIGNALLED_POOL = r'''
import multiprocessing, multiprocessing.process, os, signal
import torch  # noqa: F401  (a CPU worker is forked once torch is loaded)
from harness.executor import CellLimits, RunOptions
from harness.run.pool import WorkerPool

class Stop(BaseException):
    pass

def handler(signum, frame):
    raise Stop

signal.signal(signal.SIGTERM, handler)
'''

_INTERRUPTED_START = _SIGNALLED_POOL + r'''
real_start = multiprocessing.process.BaseProcess.start

def start_then_signal(self):
    real_start(self)  # the worker exists; the pool has not taken it in yet
    os.kill(os.getpid(), signal.SIGTERM)

multiprocessing.process.BaseProcess.start = start_then_signal
pool = WorkerPool(CellLimits(), RunOptions())
try:
    pool.start("cpu")
    print("no stop", flush=True)
except Stop:
    pool.shutdown()
    print("stopped;", len(multiprocessing.active_children()), "left", flush=True)
'''


@pytest.mark.parametrize("how", ["fork", "forkserver", "spawn"])
def test_a_stop_signal_while_a_worker_starts_leaves_no_worker_behind(how: str) -> None:
    """A SIGTERM that lands between a worker's fork and the pool taking it in: the pool
    ends that worker, and the process exits instead of waiting for ever in
    multiprocessing's exit handler (the hang seen under load, issue 21)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, ENV_START: how}
    proc = subprocess.run([sys.executable, "-c", _INTERRUPTED_START], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped; 0 left", proc.stdout + proc.stderr


_INTERRUPTED_SHUTDOWN = _SIGNALLED_POOL + r'''
pool = WorkerPool(CellLimits(), RunOptions())
for _ in range(3):
    pool.start("cpu")
while not all(w.ready for w in pool.workers):
    pool.wait(1.0)
real_retire = WorkerPool._retire

def retire_then_signal(self, worker, *, kill):
    real_retire(self, worker, kill=kill)  # the first worker ends; a signal lands
    WorkerPool._retire = real_retire
    os.kill(os.getpid(), signal.SIGTERM)

WorkerPool._retire = retire_then_signal
try:
    pool.shutdown()
    print("no stop", flush=True)
except Stop:
    print("stopped;", len(multiprocessing.active_children()), "left", flush=True)
'''


def test_a_stop_signal_while_the_pool_shuts_down_leaves_no_worker_behind() -> None:
    """A SIGTERM that lands while the pool ends its workers (after the last cell, the
    driver killed at the end of a run): the workers not yet ended are killed, and the
    process exits instead of waiting for ever in multiprocessing's exit handler (the hang
    CI saw in test_the_driver_killed_at_a_random_moment, issue 21)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _INTERRUPTED_SHUTDOWN], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped; 0 left", proc.stdout + proc.stderr


def test_the_fork_server_ends_without_the_interpreters_teardown() -> None:
    """The server ends when the run does; it must not spend a second freeing torch's
    modules while it still holds a pipe it shares with the run (``harness run | tee``,
    a caller's captured output), so the preload ends it from its exit handlers: an object
    only the teardown would free is never finalised."""
    import subprocess
    import sys

    script = ("import harness.run.preload\n"
              "class Finalised:\n"
              "    def __del__(self):\n"
              "        print('torn down', flush=True)\n"
              "kept = Finalised()\n"
              "print('ending', flush=True)\n"
              "raise SystemExit(3)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.split() == ["ending"], proc.stdout + proc.stderr
    assert proc.returncode == 0  # os._exit(0) from the exit handler


def test_the_fork_server_imports_only_the_plugins_a_host_would_load(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin blocked (or not selected) because it breaks or hangs on import must not be
    imported by the fork server's preload either."""
    from harness.plugins.host import installed_modules

    monkeypatch.delenv("HARNESS_PLUGINS", raising=False)
    monkeypatch.delenv("HARNESS_BLOCK_PLUGINS", raising=False)
    every = installed_modules()
    assert {"harness_builtins.mnist", "harness_builtins.mlp"} <= set(every)
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "builtin-mnist")
    assert "harness_builtins.mnist" not in installed_modules()
    assert set(installed_modules()) == set(every) - {"harness_builtins.mnist"}
    monkeypatch.delenv("HARNESS_BLOCK_PLUGINS")
    monkeypatch.setenv("HARNESS_PLUGINS", "builtin-mlp")
    assert installed_modules() == ["harness_builtins.mlp"]


def test_the_fork_servers_imports_are_out_of_the_collectors_sight() -> None:
    """A worker collects garbage before its memory baseline and before each cell; over
    torch's and the plugins' objects that is 0.14 s a time on the 2-core machine, so the
    preload freezes them (gc.freeze) and a worker's collection sees only its own. It freezes
    them before the collector is back on: no collection ever walks the objects the imports
    made (the first allocation after would set off one over half a million, 0.2 s before
    the server could fork its first worker)."""
    import subprocess
    import sys

    script = ("import gc\n"
              "pending = []  # the young objects each collection starts with\n"
              "gc.callbacks.append(lambda phase, info: phase == 'start'\n"
              "                    and pending.append(gc.get_count()[0]))\n"
              "import harness.run.preload\n"
              "[[] for _ in range(10_000)]  # allocations enough to set off collections\n"
              "print(gc.get_freeze_count(), sum(gc.get_count()), max(pending, default=0))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    frozen, tracked, largest = (int(n) for n in proc.stdout.split())
    assert frozen > 100_000 and tracked < 1_000
    assert largest < 10_000
