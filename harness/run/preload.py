"""Imported once by the fork server CPU workers start from (:mod:`harness.run.start`):
torch, ``torch._dynamo`` (a torch optimizer's first step imports it), the worker's own
code and the modules of the installed plugins. The plugin host itself is built in each
worker, from the environment the run gives it; a module that fails to import here is
left for the worker to report, and what the imports print or warn is dropped (the run's
own plugin loading has shown it once)."""

import atexit
import contextlib
import gc
import importlib
import os
import sys
import warnings
from collections.abc import Iterator

from harness.imports import collector_paused


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()  # what Python buffered goes to /dev/null too
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


# The server ends when harness run does; ending it without freeing torch's modules one by
# one (about a second) lets a pipe it shares with the run (`harness run ... | tee`, a
# caller's captured output) close at once. Forked workers end by os._exit, not by this.
atexit.register(os._exit, 0)

with _quiet(), collector_paused():  # see harness.imports
    import torch
    import torch._dynamo  # noqa: F401

    import harness.run.pool
    import harness.train.loop  # noqa: F401  (what a cell runs)
    from harness.plugins.host import installed_modules

    for _name in installed_modules():
        with contextlib.suppress(Exception, SystemExit):
            importlib.import_module(_name)

    # What the imports made lives as long as the server and its workers: out of the
    # collector's sight, a worker's gc.collect() (before its memory baseline and each cell)
    # takes milliseconds instead of 0.14 s, and does not copy the shared pages it would have
    # touched. Frozen before the collector is back on: otherwise the first allocation after
    # sets off a collection of the half a million objects the imports made (0.2 s, before
    # the server can fork its first worker).
    gc.freeze()
