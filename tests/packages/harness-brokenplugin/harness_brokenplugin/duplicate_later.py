"""Registers a model of its own, then in its second hook an optimizer the built-ins own."""

import torch

from harness import hookimpl
from harness_brokenplugin.duplicate import Copycat


class Own(Copycat):
    name = "own-model"


@hookimpl
def register_models(registry):
    registry.add(Own())


@hookimpl
def register_optimizers(registry):
    registry.add_torch("adam", torch.optim.Adam, "a second adam", lr=0.1)
