"""The built-in ``local`` executor: cells in worker processes on this machine.

``--workers 0`` runs them inline in the ``harness`` process instead (no isolation,
no timeout: for debugging a plugin with a debugger or print statements). The executor
itself is harness's own (:mod:`harness.run.workers`); this plugin registers it.
"""

from __future__ import annotations

from harness import hookimpl
from harness.executor import ExecutorSpec
from harness.registry import ExecutorRegistry
from harness.run.workers import LOCAL_FLAGS, LOCAL_SETTINGS, check_local, local


@hookimpl
def register_executors(registry: ExecutorRegistry) -> None:
    registry.add(ExecutorSpec("local", local, "worker processes on this machine (--workers N)",
                              settings=LOCAL_SETTINGS, check=check_local, flags=LOCAL_FLAGS))
