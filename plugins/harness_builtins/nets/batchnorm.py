"""The torch side of :mod:`harness_builtins.batchnorm`: the tutorial's deep, badly
initialised net (with or without batch norm), the parabola, the pre-activation
histograms, and what a cell builds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import init

from harness import BuildContext, Supervised
from harness_builtins.batchnorm import (
    B_INIT,
    HIDDEN_RANGE,
    HIST_BINS,
    INPUT_RANGE,
    N_HIDDEN,
    N_SAMPLES,
    N_TEST,
    NOISE_STD,
    VALIDATION_STREAM,
    X_RANGE,
)

#: The hidden activations by name; their names are
#: :data:`harness_builtins.batchnorm.ACTIVATION_NAMES`.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu}


class Net(nn.Module):
    """The tutorial's net; ``forward`` returns (out, layer_input, pre_activation).

    ``pre_activation[0]`` is the raw input and ``pre_activation[i + 1]`` the output
    of hidden Linear i before batch norm, as the tutorial records them.
    """

    def __init__(self, batch_normalization: bool, activation: str) -> None:
        super().__init__()
        self.do_bn = batch_normalization
        self.activation = ACTIVATIONS[activation]
        self.bn_input = nn.BatchNorm1d(1, momentum=0.5) if batch_normalization else None
        self.fcs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for i in range(N_HIDDEN):
            fc = nn.Linear(1 if i == 0 else 10, 10)
            self._set_init(fc)
            self.fcs.append(fc)
            if batch_normalization:
                self.bns.append(nn.BatchNorm1d(10, momentum=0.5))
        self.predict = nn.Linear(10, 1)
        self._set_init(self.predict)

    @staticmethod
    def _set_init(layer: nn.Linear) -> None:
        init.normal_(layer.weight, mean=0.0, std=0.1)
        init.constant_(layer.bias, B_INIT)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        pre_activation = [x]
        if self.bn_input is not None:
            x = self.bn_input(x)
        layer_input = [x]
        for i, fc in enumerate(self.fcs):
            x = fc(x)
            pre_activation.append(x)
            if self.do_bn:
                x = self.bns[i](x)
            x = self.activation(x)
            layer_input.append(x)
        out = self.predict(x)
        return out, layer_input, pre_activation


def parabola(x: Tensor, generator: torch.Generator) -> Tensor:
    """y = x² - 5 + N(0, 2²)."""
    return x.pow(2) - 5 + NOISE_STD * torch.randn(x.shape, generator=generator)


def _output(model: nn.Module, x: Tensor) -> Tensor:
    return model(x)[0]  # type: ignore[no-any-return]


def histogram(values: Tensor, value_range: tuple[float, float]) -> dict[str, list[Any]]:
    """Counts over HIST_BINS equal bins; values beyond the range go to the outer bins."""
    data = values.detach().cpu().double().numpy().ravel().clip(*value_range)
    counts, edges = np.histogram(data, bins=HIST_BINS, range=value_range)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def build(ctx: BuildContext) -> Supervised:
    """A ``batchnorm`` cell: the parabola's training, test and validation points, and the
    net (batch norm and activation as ``ctx.params`` say)."""
    x = torch.linspace(*X_RANGE, N_SAMPLES).unsqueeze(1)
    y = parabola(x, ctx.cpu_generator(0))
    test_x = torch.linspace(*X_RANGE, N_TEST).unsqueeze(1)
    test_y = parabola(test_x, ctx.cpu_generator(1))
    val_y = parabola(test_x, ctx.cpu_generator(VALIDATION_STREAM))
    x, y = x.to(ctx.device), y.to(ctx.device)
    test_x, test_y, val_y = test_x.to(ctx.device), test_y.to(ctx.device), val_y.to(ctx.device)
    batch_norm = bool(ctx.params["batch_norm"])
    model = Net(batch_norm, str(ctx.params["activation"])).to(ctx.device)
    loss_fn = nn.MSELoss()

    def evaluate(m: nn.Module) -> Mapping[str, float]:
        out = _output(m, test_x)
        return {"test_loss": float(loss_fn(out, test_y)),
                "val_loss": float(loss_fn(out, val_y))}

    def artifacts(m: nn.Module) -> Mapping[str, Any]:
        was_training = m.training
        m.eval()
        try:
            with torch.no_grad():
                _, _, pre_activation = m(test_x)
        finally:
            m.train(was_training)
        layers = []
        for i, values in enumerate(pre_activation):
            hist = histogram(values, INPUT_RANGE if i == 0 else HIDDEN_RANGE)
            layers.append({"layer": i, **hist})
        return {"pre_activation": layers, "batch_norm": batch_norm}

    return Supervised(model=model, loss_fn=loss_fn, inputs=x, targets=y, evaluate=evaluate,
                      forward=_output, artifacts=artifacts, data_source="synthetic")
