"""The torch side of :mod:`harness_builtins.dropout`: the noisy line, the tutorial's
over-fitting net (with or without dropout), and what a cell builds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Supervised
from harness_builtins.dropout import N_HIDDEN, N_SAMPLES, NOISE_STD, VALIDATION_STREAM


def noisy_line(generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The tutorial's data: y = x + 0.3·N(0, 1) on 20 evenly spaced x in [-1, 1], as 20×1."""
    x = torch.unsqueeze(torch.linspace(-1, 1, N_SAMPLES), 1)
    y = x + NOISE_STD * torch.normal(
        torch.zeros(N_SAMPLES, 1), torch.ones(N_SAMPLES, 1), generator=generator
    )
    return x, y


def make_net(dropout: bool) -> nn.Sequential:
    """The tutorial's ``net_overfitting`` or, with ``dropout``, its ``net_dropped``."""

    def drop() -> list[nn.Module]:
        return [nn.Dropout(0.5)] if dropout else []

    return nn.Sequential(
        nn.Linear(1, N_HIDDEN),
        *drop(),
        nn.ReLU(),
        nn.Linear(N_HIDDEN, N_HIDDEN),
        *drop(),
        nn.ReLU(),
        nn.Linear(N_HIDDEN, 1),
    )


def build(ctx: BuildContext) -> Supervised:
    """A ``dropout`` cell: the 20 training points, the same x with test and validation
    noise of their own, and the net (dropout as ``ctx.params`` says)."""
    x, y = noisy_line(ctx.cpu_generator(0))
    test_x, test_y = noisy_line(ctx.cpu_generator(1))  # same x, fresh noise
    val_x, val_y = noisy_line(ctx.cpu_generator(VALIDATION_STREAM))  # and again
    x, y = x.to(ctx.device), y.to(ctx.device)
    test_x, test_y = test_x.to(ctx.device), test_y.to(ctx.device)
    val_x, val_y = val_x.to(ctx.device), val_y.to(ctx.device)
    model = make_net(bool(ctx.params["dropout"])).to(ctx.device)
    loss_fn = nn.MSELoss()

    def evaluate(m: nn.Module) -> Mapping[str, float]:
        return {
            "train_loss": float(loss_fn(m(x), y)),
            "test_loss": float(loss_fn(m(test_x), test_y)),
            "val_loss": float(loss_fn(m(val_x), val_y)),
        }

    def artifacts(m: nn.Module) -> Mapping[str, Any]:
        was_training = m.training
        m.eval()
        try:
            with torch.no_grad():
                train_prediction = m(x)[:, 0].tolist()
        finally:
            m.train(was_training)
        # x is sorted already (linspace), and the test points share it
        return {
            "x": x[:, 0].tolist(),
            "y": y[:, 0].tolist(),
            "test_y": test_y[:, 0].tolist(),
            "prediction": train_prediction,
        }

    return Supervised(model=model, loss_fn=loss_fn, inputs=x, targets=y, evaluate=evaluate,
                      artifacts=artifacts)
