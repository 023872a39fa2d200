"""A complete, minimal third-party plugin: one problem and one optimizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

import torch
from torch import nn
from torch.optim.optimizer import ParamsT

import harness


class Line(harness.Problem):
    name = "line"
    description = "Fit y = 3x - 1 with a single linear unit"
    batch_size = 32
    steps = 100
    metrics = ("test_loss",)
    target = harness.Target("test_loss", 0.05, "min")
    params = (harness.Param("slope", 3.0, help="the slope to learn"),)

    def build(self, ctx: harness.BuildContext) -> harness.Supervised:
        slope = ctx.params["slope"]                   # a harness.ParamValue; harness has
        assert isinstance(slope, float)               # coerced it to the default's type
        g = ctx.cpu_generator()                       # data is a function of the seed
        x = torch.rand(512, 1, generator=g) * 2 - 1
        y = slope * x - 1
        x, y = x.to(ctx.device), y.to(ctx.device)
        model = nn.Linear(1, 1).to(ctx.device)        # torch is seeded before build()

        def evaluate(m: nn.Module) -> dict[str, float]:   # eval mode, no_grad
            return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

        return harness.Supervised(model=model, loss_fn=nn.functional.mse_loss,
                                  inputs=x, targets=y, evaluate=evaluate)


class SignSGD(torch.optim.Optimizer):
    """Steps by the sign of the gradient."""

    def __init__(self, params: ParamsT, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    @overload
    def step(self, closure: None = None) -> None: ...
    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:                      # harness calls step() without one
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])
        return loss


@harness.hookimpl
def register_problems(registry: harness.ProblemRegistry) -> None:
    registry.add(Line())


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    registry.add(harness.OptimizerSpec("signsgd", SignSGD, {"lr": 0.02}, "sign of the gradient"))
