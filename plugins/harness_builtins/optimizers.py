"""The tutorial's optimizers, with its settings as defaults (LR = 0.01 throughout)."""

from __future__ import annotations

import torch

from harness import OptimizerRegistry, hookimpl

LR = 0.01


@hookimpl
def register_optimizers(registry: OptimizerRegistry) -> None:
    registry.add_torch("sgd", torch.optim.SGD, "plain stochastic gradient descent", lr=LR)
    registry.add_torch(
        "momentum", torch.optim.SGD, "SGD with momentum 0.8", lr=LR, momentum=0.8
    )
    registry.add_torch("adagrad", torch.optim.Adagrad, "AdaGrad", lr=LR)
    registry.add_torch("rmsprop", torch.optim.RMSprop, "RMSprop, alpha 0.9", lr=LR, alpha=0.9)
    registry.add_torch(
        "adam", torch.optim.Adam, "Adam, betas (0.9, 0.99)", lr=LR, betas=(0.9, 0.99)
    )
    registry.add_torch(
        "adamw", torch.optim.AdamW, "AdamW, decoupled weight decay 0.01",
        lr=LR, betas=(0.9, 0.99), weight_decay=0.01,
    )
