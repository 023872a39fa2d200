"""A factory that takes ``**kwargs`` and declares nothing: harness cannot tell its
hyperparameters from typos, so registering it fails this plugin (and only it)."""

from __future__ import annotations

from typing import Any

import pytorch_optimizer
import torch

import harness


def adan(params: Any, **hyper: Any) -> torch.optim.Optimizer:
    optimizer: torch.optim.Optimizer = pytorch_optimizer.Adan(params, **hyper)
    return optimizer


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    registry.add(harness.OptimizerSpec("po-undeclared", adan, {"lr": 0.001}, "Adan, undeclared"))
