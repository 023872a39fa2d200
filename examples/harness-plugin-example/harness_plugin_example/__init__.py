"""An example harness plugin: one optimizer (Lion) and one problem (an MLP on digits).

harness finds this module through the entry point in ``pyproject.toml`` and calls
the two hooks below, each with a typed registry.
"""

from __future__ import annotations

import harness
from harness_plugin_example.digits import DigitsMLP
from harness_plugin_example.lion import Lion

__all__ = ["DigitsMLP", "Lion", "register_optimizers", "register_problems"]


@harness.hookimpl
def register_problems(registry: harness.ProblemRegistry) -> None:
    registry.add(DigitsMLP())


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    # Lion's steps all have the size lr (a sign), so it wants an lr 3-10x below Adam's.
    registry.add(harness.OptimizerSpec(
        name="lion",
        factory=Lion,
        defaults={"lr": 0.001, "betas": (0.9, 0.99), "weight_decay": 0.0},
        description="Lion: the sign of interpolated momentum (Chen et al. 2023)",
    ))
