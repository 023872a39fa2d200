"""Raises inside its registration hook, after registering one optimizer."""

import torch

from harness import OptimizerSpec, hookimpl


@hookimpl
def register_optimizers(registry):
    registry.add(OptimizerSpec("half-registered", torch.optim.SGD, {"lr": 0.1}))
    raise RuntimeError("the plugin's registration broke")
