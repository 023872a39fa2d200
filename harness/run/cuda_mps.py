"""NVIDIA's CUDA Multi-Process Service for packed GPU workers (``--cuda-mps``).

Without MPS, the GPU time-slices between processes: the kernels of two workers on one
card never run at the same time, and a context switch separates them. Tiny models
launch kernels that fill a few of the card's multiprocessors, so eight packed workers
leave most of it idle. Under MPS the workers' kernels go through one server's shared
context and run side by side.

:func:`daemon` starts a private control daemon for one run (its pipe and log folders in
a temporary directory, so it touches no system-wide daemon and no other user's), hands
out the environment that makes a worker its client, and stops it afterwards. A daemon
that already answers at ``$CUDA_MPS_PIPE_DIRECTORY`` is used as it is and left running.
The GPU's settings (compute mode and the rest) are never changed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, UsageError

CONTROL = "nvidia-cuda-mps-control"
#: Where the driver's utilities live when they are not on PATH (containers mount them there).
_SEARCH = ("/usr/local/nvidia/bin", "/usr/bin", "/usr/local/bin")
#: Seconds to wait for the daemon's control pipe, and for it to quit.
START_S = 10.0
STOP_S = 15.0
#: Seconds a GPU worker may take from its start (torch import and plugins included) to
#: become the server's client: an attach can hang while the daemon answers questions.
ATTACH_S = 180.0
#: The control socket is PIPE_DIR/control, and a Unix socket's path holds ~107 bytes: a
#: longer temporary folder would make the daemon die at start, so such a one is not used.
_MAX_BASE = 60


class MPSError(HarnessError):
    """The MPS daemon could not be started or a worker could not become its client."""


def find_control() -> str | None:
    """The control program's path, or None when this machine has none."""
    found = shutil.which(CONTROL)
    if found:
        return found
    for folder in _SEARCH:
        path = Path(folder, CONTROL)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


def require_control() -> str:
    """The control program's path; a :class:`UsageError` naming what is missing if none."""
    found = find_control()
    if found is None:
        raise UsageError(f"--cuda-mps: {CONTROL} was not found on PATH or in "
                         f"{', '.join(_SEARCH)}; it ships with the NVIDIA driver's utilities")
    return found


@dataclass(frozen=True)
class Session:
    """One MPS control daemon: how to reach it and how to ask it things."""

    control: str
    pipe_dir: Path
    log_dir: Path
    #: Started for this run (and stopped after it), or found running.
    owned: bool

    def env(self) -> dict[str, str]:
        """The environment that makes a CUDA process a client of this daemon."""
        return {"CUDA_MPS_PIPE_DIRECTORY": str(self.pipe_dir),
                "CUDA_MPS_LOG_DIRECTORY": str(self.log_dir)}

    def query(self, command: str, timeout: float = 10.0) -> str:
        """Send one command to the daemon and return its answer."""
        try:
            done = subprocess.run([self.control], input=command + "\n", capture_output=True,
                                  text=True, timeout=timeout, env={**os.environ, **self.env()})
        except subprocess.TimeoutExpired:
            raise MPSError(f"the MPS control daemon did not answer {command!r} within "
                           f"{timeout:g} s") from None
        if done.returncode != 0:
            said = (done.stderr or done.stdout).strip().splitlines()
            raise MPSError(f"the MPS control daemon refused {command!r}"
                           + (f": {said[-1]}" if said else f" (exit {done.returncode})"))
        return done.stdout

    def servers(self) -> list[int]:
        return _pids(self.query("get_server_list"))

    def clients(self) -> set[int]:
        """Process ids of every client of every server of this daemon."""
        return {pid for server in self.servers()
                for pid in _pids(self.query(f"get_client_list {server}"))}

    def log_tail(self) -> str:
        """The last line any of the daemon's logs holds, for an error message."""
        for name in ("server.log", "control.log", "daemon.out"):
            try:
                lines = (self.log_dir / name).read_text(errors="replace").strip().splitlines()
            except OSError:
                continue
            if lines:
                return f"{name}: {lines[-1].strip()}"
        return "its logs are empty"


def _pids(text: str) -> list[int]:
    return [int(word) for word in text.split() if word.isdigit()]


def _answers(session: Session) -> bool:
    try:
        session.query("get_server_list", timeout=5.0)
    except MPSError:
        return False
    return True


@contextmanager
def daemon() -> Iterator[Session]:
    """A running MPS control daemon for the duration of the block."""
    control = require_control()
    given = os.environ.get("CUDA_MPS_PIPE_DIRECTORY")
    if given and Path(given, "control").exists():
        found = Session(control, Path(given),
                        Path(os.environ.get("CUDA_MPS_LOG_DIRECTORY", given)), owned=False)
        if _answers(found):
            yield found
            return
    base = tempfile.gettempdir()
    root = Path(tempfile.mkdtemp(prefix="harness-mps-",
                                 dir=base if len(base) <= _MAX_BASE else "/tmp"))
    session = Session(control, root / "pipe", root / "log", owned=True)
    session.pipe_dir.mkdir()
    session.log_dir.mkdir()
    out = (session.log_dir / "daemon.out").open("wb")
    # The daemon starts nvidia-cuda-mps-server, which lives next to it: keep it findable
    # when the control program was found off PATH.
    path = os.pathsep.join([str(Path(control).parent), os.environ.get("PATH", "")])
    # -f: in the foreground, as this process's child, so it can be waited for and, when it
    # does not quit, killed with the server it started (same new process group). Started
    # through a shim that asks Linux to send it SIGTERM should this process die first, even
    # by SIGKILL, so that no daemon outlives the run.
    process = subprocess.Popen([sys.executable, "-c", _SHIM, control, "-f"],
                               env={**os.environ, **session.env(), "PATH": path},
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        _wait_until_up(session, process)
        yield session
    finally:
        _stop(session, process)
        out.close()
        shutil.rmtree(root, ignore_errors=True)


#: Sets the parent-death signal (kept across exec) and becomes the control program.
_SHIM = ("import ctypes, os, signal, sys\n"
         "try:\n"
         "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
         "except (OSError, AttributeError):\n"
         "    pass\n"
         "os.execv(sys.argv[1], sys.argv[1:])\n")


def _wait_until_up(session: Session, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MPSError(f"the MPS control daemon exited with code {process.returncode} "
                           f"as it started ({session.log_tail()})")
        if (session.pipe_dir / "control").exists() and _answers(session):
            return
        time.sleep(0.05)
    raise MPSError(f"the MPS control daemon did not open its control pipe within "
                   f"{START_S:g} s ({session.log_tail()})")


def _stop(session: Session, process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with suppress(MPSError):
            session.query("quit", timeout=STOP_S)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_S)
    if process.poll() is None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_S)
