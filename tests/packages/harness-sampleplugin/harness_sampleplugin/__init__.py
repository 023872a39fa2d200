"""A complete, minimal third-party plugin: one problem and one optimizer."""

from __future__ import annotations

import torch
from torch import nn

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
        g = ctx.cpu_generator()
        x = torch.rand(512, 1, generator=g) * 2 - 1
        y = float(ctx.params["slope"]) * x - 1
        x, y = x.to(ctx.device), y.to(ctx.device)
        model = nn.Linear(1, 1).to(ctx.device)

        def evaluate(m: nn.Module) -> dict[str, float]:
            return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

        return harness.Supervised(model=model, loss_fn=nn.functional.mse_loss,
                                  inputs=x, targets=y, evaluate=evaluate)


class SignSGD(torch.optim.Optimizer):
    """Steps by the sign of the gradient."""

    def __init__(self, params, lr: float = 0.01) -> None:  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-group["lr"])


@harness.hookimpl
def register_models(registry: harness.ProblemRegistry) -> None:
    registry.add(Line())


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    registry.add(harness.OptimizerSpec("signsgd", SignSGD, {"lr": 0.02}, "sign of the gradient"))
