"""pytorch-optimizer's classes registered as harness optimizers (every one of them takes
``**kwargs``): the classes through ``add_torch``, a factory function with its
hyperparameters declared, and an opt-out of a conformance check given at registration."""

from __future__ import annotations

from typing import Any

import pytorch_optimizer
import torch

import harness

#: Why po-ranger opts out of ``descends``: pytorch-optimizer's Ranger steps uphill for its
#: first steps (its lookahead and RAdam warm-up).
RANGER_SKIP = "Ranger steps uphill for its first steps (an upstream issue)"


def lion(params: Any, **hyper: Any) -> torch.optim.Optimizer:
    """pytorch-optimizer's Lion, built by a function that passes every keyword on."""
    optimizer: torch.optim.Optimizer = pytorch_optimizer.Lion(params, **hyper)
    return optimizer


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    registry.add_torch("po-adan", pytorch_optimizer.Adan, lr=0.001)
    registry.add_torch("po-ranger", pytorch_optimizer.Ranger, lr=0.001,
                       conformance_skip={"descends": RANGER_SKIP})
    registry.add(harness.OptimizerSpec(
        "po-lion", lion, {"lr": 0.0001}, "pytorch-optimizer's Lion through a factory",
        hyperparameters=("lr", "betas", "weight_decay")))
