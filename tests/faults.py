"""Faults injected into a real ``harness`` process, for the fault-injection tests.

    python -m tests.faults FAULT -- ARGS...

runs ``harness ARGS`` in this process with FAULT installed, then exits with its code:

``enospc:N``
    The file system is full once N bytes were written through harness's atomic writer:
    every later write fails with ENOSPC before its rename (``os.fsync`` is wrapped, which
    :func:`harness.atomic.write_atomic` calls between writing and renaming).
``enospc-cell:N``
    The file system fills up at the Nth cell record: its write fails with ENOSPC (the
    records before it, the manifest and the tables are written).
``sigterm-tables``
    SIGTERM arrives while the final tables are written, just after ``summary.csv``.

Only the driver process has the fault; worker processes start clean.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from collections.abc import Callable
from typing import Any


def _enospc_after(budget: int) -> None:
    fsync = os.fsync
    written = {"bytes": 0}

    def full_disk_fsync(fd: Any) -> None:
        written["bytes"] += os.fstat(fd).st_size
        if written["bytes"] > budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    os.fsync = full_disk_fsync


def _enospc_at_cell(n: int) -> None:
    fsync = os.fsync
    records = {"n": 0}

    def full_at_record_fsync(fd: Any) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(os.path.dirname(path)) == "cells":
            records["n"] += 1
            if records["n"] >= n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    os.fsync = full_at_record_fsync


def _sigterm_in_tables() -> None:
    replace = os.replace

    def replace_then_signal(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        replace(src, dst, *args, **kwargs)
        if os.fspath(dst).endswith("summary.csv"):
            os.kill(os.getpid(), signal.SIGTERM)

    os.replace = replace_then_signal


FAULTS: dict[str, Callable[[str], None]] = {
    "enospc": lambda arg: _enospc_after(int(arg)),
    "enospc-cell": lambda arg: _enospc_at_cell(int(arg)),
    "sigterm-tables": lambda arg: _sigterm_in_tables(),
}


def main(argv: list[str]) -> int:
    split = argv.index("--")
    fault, _, arg = argv[0].partition(":")
    FAULTS[fault](arg)
    from harness.cli import main as harness_main

    return harness_main(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
