"""The torch side of :mod:`harness_builtins.mlp`: the tutorial's regression and
classification nets, their data, and what a cell of each problem builds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Supervised
from harness_builtins.mlp import (
    CLUSTER_SIZE,
    REGRESSION_TEST,
    REGRESSION_TRAIN,
    VALIDATION_STREAM,
)

#: Activation functions by name, as functions (for ``Net``) and modules (for Sequential);
#: their names are :data:`harness_builtins.mlp.ACTIVATION_NAMES`.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": F.softplus,
}
ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


class Net(nn.Module):
    """The tutorial's regression net: one hidden layer, activation chosen in forward."""

    def __init__(
        self, n_feature: int, n_hidden: int, n_output: int, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_feature, n_hidden)
        self.predict = nn.Linear(n_hidden, n_output)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.predict(self.activation(self.hidden(x)))  # type: ignore[no-any-return]


class Classifier(nn.Module):
    """The tutorial's classification net: its output layer is called ``out`` (logits)."""

    def __init__(
        self, n_feature: int, n_hidden: int, n_output: int, activation: str = "relu"
    ) -> None:
        super().__init__()
        self.hidden = nn.Linear(n_feature, n_hidden)
        self.out = nn.Linear(n_hidden, n_output)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.activation(self.hidden(x)))  # type: ignore[no-any-return]


def sequential_net(activation: str) -> nn.Module:
    """The same 1→10→1 net built by ``nn.Sequential`` (the tutorial's quick way)."""
    return nn.Sequential(nn.Linear(1, 10), ACTIVATION_MODULES[activation](), nn.Linear(10, 1))


def square_curve(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The tutorial's data: y = x² + 0.2·U[0, 1) on n evenly spaced x in [-1, 1], as n×1."""
    x = torch.unsqueeze(torch.linspace(-1, 1, n), dim=1)
    y = x.pow(2) + 0.2 * torch.rand(x.size(), generator=generator)
    return x, y


def curve_artifacts(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, list[float]]:
    """Points and the model's prediction, sorted by x, for the report's picture."""
    order = torch.argsort(x[:, 0])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            prediction = model(x[order])
    finally:
        model.train(was_training)
    return {
        "x": x[order, 0].tolist(),
        "y": y[order, 0].tolist(),
        "prediction": prediction[:, 0].tolist(),
    }


def build_regression(ctx: BuildContext, make_model: Callable[[str], nn.Module]) -> Supervised:
    """A ``regression`` cell: the curve's training, test and validation points, and the
    model ``make_model(activation)`` makes (``Net`` or its Sequential twin)."""
    x, y = square_curve(REGRESSION_TRAIN, ctx.cpu_generator(0))
    test_x, test_y = square_curve(REGRESSION_TEST, ctx.cpu_generator(1))
    _, val_y = square_curve(REGRESSION_TEST, ctx.cpu_generator(VALIDATION_STREAM))
    x, y = x.to(ctx.device), y.to(ctx.device)
    test_x, test_y = test_x.to(ctx.device), test_y.to(ctx.device)
    val_y = val_y.to(ctx.device)
    model = make_model(str(ctx.params["activation"])).to(ctx.device)
    loss_fn = nn.MSELoss()

    def evaluate(m: nn.Module) -> Mapping[str, float]:
        prediction = m(test_x)  # the validation points share the test grid
        return {"test_loss": float(loss_fn(prediction, test_y)),
                "val_loss": float(loss_fn(prediction, val_y))}

    def artifacts(m: nn.Module) -> Mapping[str, Any]:
        return curve_artifacts(m, test_x, test_y)

    return Supervised(model=model, loss_fn=loss_fn, inputs=x, targets=y, evaluate=evaluate,
                      artifacts=artifacts)


def two_clusters(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points around (2, 2) labelled 0 and n around (-2, -2) labelled 1, std 1."""
    ones = torch.ones(n, 2)
    x0 = torch.normal(2 * ones, 1, generator=generator)
    x1 = torch.normal(-2 * ones, 1, generator=generator)
    x = torch.cat((x0, x1), 0)
    y = torch.cat((torch.zeros(n), torch.ones(n))).to(torch.int64)
    return x, y


def build_classification(ctx: BuildContext) -> Supervised:
    """A ``classification`` cell: three draws of the two clusters and a ``Classifier``."""
    x, y = two_clusters(CLUSTER_SIZE, ctx.cpu_generator(0))
    test_x, test_y = two_clusters(CLUSTER_SIZE, ctx.cpu_generator(1))
    val_x, val_y = two_clusters(CLUSTER_SIZE, ctx.cpu_generator(VALIDATION_STREAM))
    x, y = x.to(ctx.device), y.to(ctx.device)
    splits = {"test": (test_x.to(ctx.device), test_y.to(ctx.device)),
              "val": (val_x.to(ctx.device), val_y.to(ctx.device))}
    model = Classifier(2, 10, 2, str(ctx.params["activation"])).to(ctx.device)
    loss_fn = nn.CrossEntropyLoss()

    def evaluate(m: nn.Module) -> Mapping[str, float]:
        metrics: dict[str, float] = {}
        for split, (sx, sy) in splits.items():
            logits = m(sx)
            accuracy = (logits.argmax(dim=1) == sy).to(torch.float32).mean()
            metrics[f"{split}_accuracy"] = float(accuracy)
            metrics[f"{split}_loss"] = float(loss_fn(logits, sy))
        return metrics

    return Supervised(model=model, loss_fn=loss_fn, inputs=x, targets=y, evaluate=evaluate)
