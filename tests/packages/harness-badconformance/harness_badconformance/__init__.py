"""Deliberately non-conforming plugins for harness's conformance suite tests.

* ``leaky-state``: a problem whose output scale is a non-persistent buffer that
  training changes, so a state_dict round trip changes its outputs
  (fails ``state_dict_round_trip``, and only that).
* ``lr-blind``: an optimizer that takes ``lr`` and ignores it (fails ``honours_lr``).
* ``two-roles``: a well-behaved Task with two parameter groups that opts out of
  ``loss_decreases``; the suite reports the skip with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

import harness

SKIP_REASON = "two-roles opts out to show how a skip is reported"


class ScaledLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        # Not saved in the state_dict, yet every training forward changes it.
        self.register_buffer("scale", torch.ones(1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.get_buffer("scale")
        if self.training:
            scale.add_(0.01)
        return self.linear(x) * scale  # type: ignore[no-any-return]


def _line(ctx: harness.BuildContext) -> tuple[Tensor, Tensor]:
    x = torch.rand(256, 1, generator=ctx.cpu_generator()) * 2 - 1
    return x.to(ctx.device), (3 * x - 1).to(ctx.device)


class LeakyState(harness.Problem):
    name = "leaky-state"
    description = "a linear fit whose output scale lives outside the state_dict"
    batch_size = 32
    steps = 100
    metrics = ("test_loss",)
    target = harness.Target("test_loss", 0.05)

    def build(self, ctx: harness.BuildContext) -> harness.Supervised:
        x, y = _line(ctx)
        model = ScaledLinear().to(ctx.device)

        def evaluate(m: nn.Module) -> dict[str, float]:
            return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

        return harness.Supervised(model=model, loss_fn=nn.functional.mse_loss, inputs=x,
                                  targets=y, evaluate=evaluate)


class TwoRolesTask(harness.Task):
    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y
        self.encoder = nn.Linear(1, 4).to(x.device)
        self.head = nn.Linear(4, 1).to(x.device)
        self.samples_per_step = int(x.shape[0])

    def parameter_groups(self) -> Mapping[str, Iterable[nn.Parameter]]:
        return {"encoder": self.encoder.parameters(), "head": self.head.parameters()}

    def modules(self) -> Mapping[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def train_step(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> Mapping[str, Tensor]:
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(self.head(torch.tanh(self.encoder(self.x))), self.y)
        loss.backward()
        for opt in optimizers.values():
            opt.step()
        return {"loss": loss.detach()}

    def evaluate(self) -> Mapping[str, float]:
        with torch.no_grad():
            out = self.head(torch.tanh(self.encoder(self.x)))
            return {"test_loss": float(nn.functional.mse_loss(out, self.y))}


class TwoRoles(harness.Problem):
    name = "two-roles"
    description = "a Task with an encoder and a head, each with its own optimizer"
    batch_size = 256
    steps = 100
    metrics = ("test_loss",)
    roles = ("encoder", "head")
    conformance_skip: ClassVar[Mapping[str, str]] = {"loss_decreases": SKIP_REASON}

    def build(self, ctx: harness.BuildContext) -> harness.Task:
        return TwoRolesTask(*_line(ctx))


class LrBlind(torch.optim.Optimizer):
    """Takes lr, then always steps with 0.01."""

    def __init__(self, params: Iterable[Any], lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-0.01)


@harness.hookimpl
def register_models(registry: harness.ProblemRegistry) -> None:
    registry.add(LeakyState())
    registry.add(TwoRoles())


@harness.hookimpl
def register_optimizers(registry: harness.OptimizerRegistry) -> None:
    registry.add(harness.OptimizerSpec("lr-blind", LrBlind, {"lr": 0.01},
                                       "SGD that ignores its learning rate"))
