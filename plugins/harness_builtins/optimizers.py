"""The tutorial's optimizers, with its settings as defaults (LR = 0.01 throughout), and two
that take a closure: torch's LBFGS and sharpness-aware minimisation (``sam``).

torch (and ``closure_optimizers``, which subclasses its optimizers) is imported when the
optimizers are registered, the first time a host's optimizer registry is used, not when the
plugin is loaded."""

from __future__ import annotations

from harness import Capabilities, OptimizerRegistry, OptimizerSpec, SearchSpace, hookimpl

# The built-in learning-rate schedules come with the built-in optimizers (one plugin, one
# entry point): their hook is this module's too.
from harness_builtins.schedules import register_schedules  # noqa: F401

LR = 0.01

# Search spaces for tuning (docs/tuning.md), each holding the tutorial's value: learning
# rates log-uniform over four decades or more around it, momentum-like terms with 1 - x
# log-uniform (0.5 ... 0.999), weight decay and SAM's radius log-uniform.
SGD_LR = SearchSpace.log(1e-4, 1.0)
ADAPTIVE_LR = SearchSpace.log(1e-5, 0.1)
BETA = SearchSpace.one_minus_log(0.5, 0.999)
#: Adam's second-moment decay (betas[1]): 1 - x log-uniform over 0.9 ... 0.9999.
BETA2 = SearchSpace.one_minus_log(0.9, 0.9999)


@hookimpl
def register_optimizers(registry: OptimizerRegistry) -> None:
    import torch

    from harness_builtins.closure_optimizers import LBFGS, SAM

    registry.add_torch("sgd", torch.optim.SGD, "plain stochastic gradient descent",
                       space={"lr": SGD_LR}, lr=LR)
    registry.add_torch(
        "momentum", torch.optim.SGD, "SGD with momentum 0.8",
        space={"lr": SGD_LR, "momentum": BETA}, lr=LR, momentum=0.8,
    )
    registry.add_torch("adagrad", torch.optim.Adagrad, "AdaGrad", space={"lr": SGD_LR}, lr=LR)
    registry.add_torch("rmsprop", torch.optim.RMSprop, "RMSprop, alpha 0.9",
                       space={"lr": ADAPTIVE_LR, "alpha": BETA}, lr=LR, alpha=0.9)
    registry.add_torch(
        "adam", torch.optim.Adam, "Adam, betas (0.9, 0.99)",
        space={"lr": ADAPTIVE_LR, "betas[0]": BETA, "betas[1]": BETA2,
               "eps": SearchSpace.log(1e-10, 1e-6)},
        lr=LR, betas=(0.9, 0.99),
    )
    registry.add_torch(
        "adamw", torch.optim.AdamW, "AdamW, decoupled weight decay 0.01",
        space={"lr": ADAPTIVE_LR, "betas[0]": BETA, "betas[1]": BETA2,
               "weight_decay": SearchSpace.log(1e-5, 0.1)},
        lr=LR, betas=(0.9, 0.99), weight_decay=0.01,
    )
    # A few inner iterations with a line search: robust on mini-batches, and each
    # evaluation is counted in the loss_evals column.
    registry.add_torch(
        "lbfgs", LBFGS, "torch.optim.LBFGS: 4 iterations per step, strong-Wolfe "
        "line search", capabilities=Capabilities(closure=True),
        space={"lr": SearchSpace.log(0.01, 10.0),
               "history_size": SearchSpace.integer(3, 50, log=True)},
        lr=1.0, max_iter=4, history_size=10, line_search_fn="strong_wolfe",
    )
    registry.add(OptimizerSpec(
        name="sam", factory=SAM, defaults={"base": "sgd", "rho": 0.05, "lr": LR},
        description="sharpness-aware minimisation around base=sgd|adam|adamw (two loss "
                    "evaluations per step)",
        capabilities=Capabilities(closure=True),
        space={"lr": SGD_LR, "rho": SearchSpace.log(0.005, 0.5)},
    ))
