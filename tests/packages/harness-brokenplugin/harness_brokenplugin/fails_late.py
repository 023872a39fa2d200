"""Registers two models, then raises in its second hook: none of it may stay registered.

One of its models is called ``line``, as harness-sampleplugin's is: that plugin loads
later and must get the name.
"""

import torch

from harness import OptimizerSpec, hookimpl
from harness_brokenplugin.duplicate import Copycat


class Line(Copycat):
    name = "line"


class Late(Copycat):
    name = "late-model"


@hookimpl
def register_models(registry):
    registry.add(Late())
    registry.add(Line())


@hookimpl
def register_optimizers(registry):
    registry.add(OptimizerSpec("late-sgd", torch.optim.SGD, {"lr": 0.1}))
    raise RuntimeError("broke after registering its models")
