"""The tutorial's batch-normalisation experiment: a deep, badly initialised net on y = x² - 5.

Eight hidden layers of ten units start with small weights (N(0, 0.1)) and a
negative bias (-0.2); without batch norm the signal shrinks or saturates layer
after layer and training stalls. ``batch_norm=true`` adds ``BatchNorm1d`` on the
input and after every hidden Linear, as the tutorial's ``Net(batch_normalization=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import init

from harness import BuildContext, Param, Problem, ProblemRegistry, Supervised, Target, hookimpl

N_SAMPLES = 2_000
N_TEST = 200
N_HIDDEN = 8
B_INIT = -0.2
X_RANGE = (-7.0, 10.0)
NOISE_STD = 2.0
#: The generator stream of the validation noise (training uses 0 and test 1, so adding
#: the split changed neither).
VALIDATION_STREAM = 2
#: Histogram bins and ranges for the artifacts: the input layer spans the data,
#: hidden pre-activations the tutorial's plotting range.
HIST_BINS = 30
INPUT_RANGE = X_RANGE
HIDDEN_RANGE = (-4.0, 4.0)

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


class BatchNorm(Problem):
    """Regress y = x² - 5 + noise with the tutorial's 8-layer net, with or without batch norm.

    The noise variance (4) is the floor of ``test_loss``; predicting the mean
    scores about 680. ``val_loss`` is scored on the test points' x with noise of its own.
    """

    name = "batchnorm"
    description = "8-layer net (N(0,0.1) init, bias -0.2) regresses x² - 5, with/without BatchNorm"
    params = (
        Param("activation", "tanh", choices=("tanh", "relu"), help="hidden activation"),
        Param("batch_norm", True, help="BatchNorm1d(momentum=0.5) on the input and each layer"),
    )
    batch_size = 64
    steps = 1_500
    metrics = ("test_loss", "val_loss")
    target = Target("test_loss", 50.0, "min")
    validation_metric = "val_loss"

    def build(self, ctx: BuildContext) -> Supervised:
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

        return Supervised(
            model=model,
            loss_fn=loss_fn,
            inputs=x,
            targets=y,
            evaluate=evaluate,
            forward=_output,
            artifacts=artifacts,
            data_source="synthetic",
        )


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(BatchNorm())
