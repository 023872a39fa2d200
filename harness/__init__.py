"""harness: a plugin-based benchmarking harness for PyTorch models and optimizers."""

from __future__ import annotations

from harness.errors import HarnessError, UsageError
from harness.hookspecs import hookimpl
from harness.optimizer import OptimizerSpec
from harness.problem import (
    BuildContext,
    Param,
    Problem,
    ShuffledBatches,
    Supervised,
    Target,
    Task,
)
from harness.registry import OptimizerRegistry, ProblemRegistry

__version__ = "0.1.0"

__all__ = [
    "BuildContext",
    "HarnessError",
    "OptimizerRegistry",
    "OptimizerSpec",
    "Param",
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
