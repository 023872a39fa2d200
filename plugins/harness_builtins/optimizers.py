"""The tutorial's optimizers, with its settings as defaults (LR = 0.01 throughout), and two
that take a closure: torch's LBFGS and sharpness-aware minimisation (``sam``)."""

from __future__ import annotations

import torch

from harness import Capabilities, OptimizerRegistry, OptimizerSpec, hookimpl
from harness_builtins.closure_optimizers import LBFGS, SAM

# The built-in learning-rate schedules come with the built-in optimizers (one plugin, one
# entry point): their hook is this module's too.
from harness_builtins.schedules import register_schedules  # noqa: F401

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
    # A few inner iterations with a line search: robust on mini-batches, and each
    # evaluation is counted in the loss_evals column.
    registry.add_torch(
        "lbfgs", LBFGS, "torch.optim.LBFGS: 4 iterations per step, strong-Wolfe "
        "line search", capabilities=Capabilities(closure=True),
        lr=1.0, max_iter=4, history_size=10, line_search_fn="strong_wolfe",
    )
    registry.add(OptimizerSpec(
        name="sam", factory=SAM, defaults={"base": "sgd", "rho": 0.05, "lr": LR},
        description="sharpness-aware minimisation around base=sgd|adam|adamw (two loss "
                    "evaluations per step)",
        capabilities=Capabilities(closure=True),
    ))
