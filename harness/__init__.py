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
    from harness.optimizer import OptimizerSpec
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
    from harness.registry import ExecutorRegistry, OptimizerRegistry, ProblemRegistry

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first access).
_LAZY = {
    "OptimizerSpec": "harness.optimizer",
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
}

__all__ = [
    "BatchSource",
    "BuildContext",
    "DuplicateNameError",
    "ExecutorRegistry",
    "HarnessError",
    "OptimizerRegistry",
    "OptimizerSpec",
    "Param",
    "ParamValue",
    "Problem",
    "ProblemRegistry",
    "ShuffledBatches",
    "Supervised",
    "Target",
    "Task",
    "UsageError",
    "__version__",
    "hookimpl",
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
