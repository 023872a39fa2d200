"""How a worker process starts: ``fork``, ``forkserver`` or ``spawn``.

A CPU worker needs torch, ``torch._dynamo`` (which a torch optimizer's first step imports:
about a second) and the plugins. Forked from ``harness run`` it inherits torch and the
plugins, and imports ``torch._dynamo`` itself once its first cell starts. From a *fork
server* started when the run starts (:func:`fork_server`) it inherits all three: the
server imports them (:mod:`harness.run.preload`) on another core while ``harness run``
reads its grid and writes its manifest, so a one-cell run waits for one import of torch
instead of two imports in turn, and every fresh worker (``--repeats``) starts warm.

A GPU worker is always spawned (a process that has started CUDA cannot fork a child
that uses it). ``HARNESS_WORKER_START`` chooses for the CPU workers: ``fork``,
``forkserver`` or ``spawn``; unset, it is ``forkserver`` inside a :func:`fork_server` block
(``harness run`` is one) and ``fork`` otherwise.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from multiprocessing import forkserver

from harness.errors import UsageError

__all__ = ["ENV_START", "METHODS", "fork_server", "start_method"]

#: The variable that chooses how CPU workers start.
ENV_START = "HARNESS_WORKER_START"
#: Its values.
METHODS = ("fork", "forkserver", "spawn")
#: What the fork server imports before it forks a worker.
PRELOAD = ["harness.run.preload"]

_in_use = False


def _chosen() -> str:
    chosen = os.environ.get(ENV_START, "")
    if chosen and chosen not in METHODS:
        raise UsageError(f"{ENV_START} must be one of {', '.join(METHODS)}, not {chosen!r}")
    return chosen


@contextlib.contextmanager
def fork_server() -> Iterator[bool]:
    """CPU workers started inside this block start from the fork server, which starts
    now so that it imports what they need while this process goes on;
    yields whether it runs. Nothing changes where the platform has no fork server, where
    ``HARNESS_WORKER_START`` chooses another method, or on one CPU (the two imports
    would take turns on it). The server outlives the block: a later run uses it again."""
    global _in_use
    chosen = _chosen()
    started = (chosen in ("", "forkserver")
               and "forkserver" in mp.get_all_start_methods()
               and ((os.cpu_count() or 1) >= 2 or chosen == "forkserver"))
    if started:
        forkserver.set_forkserver_preload(PRELOAD)
        forkserver.ensure_running()
    previous, _in_use = _in_use, _in_use or started
    try:
        yield started
    finally:
        _in_use = previous


def start_method(device: str) -> str:
    """How a worker for ``device`` starts (see the module's documentation)."""
    chosen = _chosen() or ("forkserver" if _in_use else "fork")
    torch = sys.modules.get("torch")
    if device != "cpu" or chosen == "spawn":
        return "spawn"
    if chosen == "forkserver":
        return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    if torch is None or "fork" not in mp.get_all_start_methods():
        return "spawn"
    return "spawn" if torch.cuda.is_initialized() else "fork"
