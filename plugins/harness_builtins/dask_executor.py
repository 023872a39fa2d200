"""The built-in ``dask`` executor: a grid's cells on a Dask distributed cluster.

It is built on harness's public API only, as a Ray or Slurm executor would be:

* :mod:`harness_builtins.dask_settings`: its settings (``--scheduler``,
  ``--executor-option KEY=VALUE``, ``--workers`` as the local cluster's ``n_workers``).
* :mod:`harness_builtins.dask_client`: the client side, one Dask task per cell, the
  results handed to the runner as they complete.
* :mod:`harness_builtins.dask_worker`: the task, which runs its cell on the worker
  thread's :class:`harness.WorkerPool` (a child process: the local executor's hard
  timeout, crash statuses and partial curves).
"""

from __future__ import annotations

import sys
from dataclasses import replace

from harness import (
    CellLimits,
    Executor,
    ExecutorContext,
    ExecutorRegistry,
    ExecutorSpec,
    RunOptions,
    UsageError,
    hookimpl,
)
from harness_builtins.dask_client import (
    LOCAL_CLUSTER_CONFIG,
    DaskExecutor,
    SchedulerLost,
    _client_log_withheld,
    connect,
)
from harness_builtins.dask_settings import FLAGS, SETTINGS, DaskSettings, parse_settings
from harness_builtins.dask_worker import version_mismatch

__all__ = ["LOCAL_CLUSTER_CONFIG", "DaskExecutor", "DaskSettings", "SchedulerLost",
           "_client_log_withheld", "dask", "parse_settings", "register_executors",
           "version_mismatch"]

INSTALL_HINT = "the dask executor needs dask[distributed]: pip install 'harness[dask]'"


def dask(limits: CellLimits, run_options: RunOptions, context: ExecutorContext) -> Executor:
    try:
        import distributed  # noqa: F401 - an optional extra
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    settings = parse_settings(context.settings, limits)
    if not settings.shared_filesystem:
        if run_options.checkpoint_every or run_options.models_dir is not None:
            print("harness: warning: --checkpoint-every and --save-models are ignored with "
                  "--executor dask: the workers cannot write into this machine's run "
                  "directory (if they share its filesystem, add --executor-option "
                  "shared_filesystem=true)", file=sys.stderr)
        # Paths on the client's disk mean nothing on another machine.
        run_options = replace(run_options, checkpoint_every=None, checkpoint_dir=None,
                              models_dir=None)
    # Connect now: the runner builds the executor before it creates the run directory.
    client = connect(settings.scheduler) if settings.scheduler is not None else None
    return DaskExecutor(limits, run_options, settings, context, client)


@hookimpl
def register_executors(registry: ExecutorRegistry) -> None:
    registry.add(ExecutorSpec(
        "dask", dask, "cells as tasks on a Dask cluster (--scheduler tcp://HOST:PORT; "
                      "without it a local cluster of --workers processes)",
        settings=SETTINGS, check=parse_settings, flags=FLAGS))
