"""harness: a plugin-based benchmarking harness for PyTorch models and optimizers.

The public names below are imported on first use (PEP 562), not with the package:
``harness.testing.plugin`` is a pytest plugin loaded by every pytest run in an
environment where harness is installed, and importing torch there would cost
every such run a second or more. ``hookimpl`` and the errors are cheap and eager.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from harness.errors import DuplicateNameError, HarnessError, UsageError
from harness.hookspecs import hookimpl

if TYPE_CHECKING:
    from harness.cell import Cell
    from harness.executor import (
        CellLimits,
        CostEstimates,
        Executor,
        ExecutorContext,
        ExecutorFactory,
        ExecutorSpec,
        PluginSource,
        ResultCallback,
        RunOptions,
        StartCallback,
        WindowCallback,
    )
    from harness.optimizer import Capabilities, OptimizerSpec
    from harness.outcome import CellResult, Status
    from harness.problem import (
        BatchSource,
        BuildContext,
        Param,
        ParamValue,
        Problem,
        ShuffledBatches,
        Supervised,
        Target,
        Task,
    )
    from harness.registry import (
        ExecutorRegistry,
        OptimizerRegistry,
        ProblemRegistry,
        ScheduleRegistry,
    )
    from harness.run.execute import execute_cell, partial_result
    from harness.run.pool import PoolEvent, Worker, WorkerPool
    from harness.run.scheduling import longest_first
    from harness.schedules import ScheduleSpec
    from harness.space import SearchSpace
    from harness.train.steps import take_step

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first access).
_LAZY = {
    "OptimizerSpec": "harness.optimizer",
    "Capabilities": "harness.optimizer",
    # A Task's own step honouring its optimizers' capabilities (closure, second order).
    "take_step": "harness.train.steps",
    "BatchSource": "harness.problem",
    "BuildContext": "harness.problem",
    "Param": "harness.problem",
    "ParamValue": "harness.problem",
    "Problem": "harness.problem",
    "ShuffledBatches": "harness.problem",
    "Supervised": "harness.problem",
    "Target": "harness.problem",
    "Task": "harness.problem",
    "ExecutorRegistry": "harness.registry",
    "OptimizerRegistry": "harness.registry",
    "ProblemRegistry": "harness.registry",
    "ScheduleRegistry": "harness.registry",
    "ScheduleSpec": "harness.schedules",
    # Tuning: where a hyperparameter is sampled from (docs/tuning.md).
    "SearchSpace": "harness.space",
    # Writing an executor: the contract, and the pool and cell runner the built-in ones use.
    "Cell": "harness.cell",
    "CellResult": "harness.outcome",
    "Status": "harness.outcome",
    "CellLimits": "harness.executor",
    "CostEstimates": "harness.executor",
    "Executor": "harness.executor",
    "ExecutorContext": "harness.executor",
    "ExecutorFactory": "harness.executor",
    "ExecutorSpec": "harness.executor",
    "PluginSource": "harness.executor",
    "ResultCallback": "harness.executor",
    "RunOptions": "harness.executor",
    "StartCallback": "harness.executor",
    "WindowCallback": "harness.executor",
    "PoolEvent": "harness.run.pool",
    "Worker": "harness.run.pool",
    "WorkerPool": "harness.run.pool",
    "execute_cell": "harness.run.execute",
    "partial_result": "harness.run.execute",
    "longest_first": "harness.run.scheduling",
}

__all__ = [
    "BatchSource",
    "BuildContext",
    "Capabilities",
    "Cell",
    "CellLimits",
    "CellResult",
    "CostEstimates",
    "DuplicateNameError",
    "Executor",
    "ExecutorContext",
    "ExecutorFactory",
    "ExecutorRegistry",
    "ExecutorSpec",
    "HarnessError",
    "OptimizerRegistry",
    "OptimizerSpec",
    "Param",
    "ParamValue",
    "PluginSource",
    "PoolEvent",
    "Problem",
    "ProblemRegistry",
    "ResultCallback",
    "RunOptions",
    "ScheduleRegistry",
    "ScheduleSpec",
    "SearchSpace",
    "ShuffledBatches",
    "StartCallback",
    "Status",
    "Supervised",
    "Target",
    "Task",
    "UsageError",
    "WindowCallback",
    "Worker",
    "WorkerPool",
    "__version__",
    "execute_cell",
    "hookimpl",
    "longest_first",
    "partial_result",
    "take_step",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
