"""The built-in ``local`` executor: cells in worker processes on this machine.

``--workers 0`` runs them inline in the ``harness`` process instead (no isolation,
no timeout: for debugging a plugin with a debugger or print statements).
"""

from __future__ import annotations

from harness import hookimpl
from harness.executor import ExecOptions, Executor, ExecutorContext, ExecutorSpec, RunOptions
from harness.registry import ExecutorRegistry
from harness.run.workers import InlineExecutor, ProcessExecutor


def local(options: ExecOptions, run_options: RunOptions, context: ExecutorContext) -> Executor:
    if options.workers == 0:
        return InlineExecutor(options, run_options, context.resolve, costs=context.costs)
    return ProcessExecutor(options, run_options, target_of=lambda c: context.resolve(c)[0],
                           costs=context.costs)


@hookimpl
def register_executors(registry: ExecutorRegistry) -> None:
    registry.add(ExecutorSpec("local", local, "worker processes on this machine (--workers N)"))
