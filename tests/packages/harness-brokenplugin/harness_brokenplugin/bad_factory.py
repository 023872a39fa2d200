"""An optimizer whose default names a keyword its factory does not take."""

import torch

from harness import OptimizerSpec, hookimpl


def sgd(params, lr=0.01):
    return torch.optim.SGD(params, lr=lr)


@hookimpl
def register_optimizers(registry):
    registry.add(OptimizerSpec("bad-key", sgd, {"lr": 0.01, "momentun": 0.9}, "a typo"))
