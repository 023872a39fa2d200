"""The tutorial's first networks: 1-D regression and two-cluster classification.

``regression`` and ``regression-sequential`` learn the same curve with the same
architecture, written once as a ``Net`` class and once with ``nn.Sequential``;
the harness seeds the global RNG before ``build``, so both start from identical
weights and should train identically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness import BuildContext, Param, Problem, ProblemRegistry, Supervised, Target, hookimpl

#: Activation functions by name, as functions (for ``Net``) and modules (for Sequential).
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
ACTIVATION = Param("activation", "relu", choices=tuple(ACTIVATIONS), help="hidden-layer activation")

REGRESSION_TRAIN = 1_000
REGRESSION_TEST = 200
CLUSTER_SIZE = 100
#: The generator stream (``ctx.cpu_generator(offset)``) the validation split is drawn
#: from: training data uses 0 and test data 1, so adding the split changed neither.
VALIDATION_STREAM = 2


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


class Regression(Problem):
    """Fit y = x² + noise with a 1→10→1 MLP (the tutorial's ``Net`` class).

    The test points lie on a different grid from the training points and carry
    their own noise; the noise's variance (0.0033) is the floor of ``test_loss``,
    and predicting the mean scores about 0.09. The validation points share the
    test grid with noise of their own (a generator stream of their own, so the
    training and test data are those of runs before the split existed). Batches
    of 100 of the 1,000 points: the tutorial's full batch of 100, with ten times
    the data.
    """

    name = "regression"
    description = "1→10→1 MLP (Net class) fits y = x² + 0.2·U(0,1) noise on [-1, 1]"
    params = (ACTIVATION,)
    batch_size = 100
    steps = 500
    eval_every = 10
    metrics = ("test_loss", "val_loss")
    target = Target("test_loss", 0.01, "min")
    validation_metric = "val_loss"

    def make_model(self, activation: str) -> nn.Module:
        return Net(1, 10, 1, activation)

    def build(self, ctx: BuildContext) -> Supervised:
        x, y = square_curve(REGRESSION_TRAIN, ctx.cpu_generator(0))
        test_x, test_y = square_curve(REGRESSION_TEST, ctx.cpu_generator(1))
        _, val_y = square_curve(REGRESSION_TEST, ctx.cpu_generator(VALIDATION_STREAM))
        x, y = x.to(ctx.device), y.to(ctx.device)
        test_x, test_y = test_x.to(ctx.device), test_y.to(ctx.device)
        val_y = val_y.to(ctx.device)
        model = self.make_model(str(ctx.params["activation"])).to(ctx.device)
        loss_fn = nn.MSELoss()

        def evaluate(m: nn.Module) -> Mapping[str, float]:
            prediction = m(test_x)  # the validation points share the test grid
            return {"test_loss": float(loss_fn(prediction, test_y)),
                    "val_loss": float(loss_fn(prediction, val_y))}

        def artifacts(m: nn.Module) -> Mapping[str, Any]:
            return curve_artifacts(m, test_x, test_y)

        return Supervised(
            model=model,
            loss_fn=loss_fn,
            inputs=x,
            targets=y,
            evaluate=evaluate,
            artifacts=artifacts,
        )


class RegressionSequential(Regression):
    """The same problem with the net built by ``nn.Sequential`` (the tutorial's quick way)."""

    name = "regression-sequential"
    description = "1→10→1 MLP (nn.Sequential) fits y = x² + 0.2·U(0,1) noise on [-1, 1]"

    def make_model(self, activation: str) -> nn.Module:
        return nn.Sequential(nn.Linear(1, 10), ACTIVATION_MODULES[activation](), nn.Linear(10, 1))


def two_clusters(n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points around (2, 2) labelled 0 and n around (-2, -2) labelled 1, std 1."""
    ones = torch.ones(n, 2)
    x0 = torch.normal(2 * ones, 1, generator=generator)
    x1 = torch.normal(-2 * ones, 1, generator=generator)
    x = torch.cat((x0, x1), 0)
    y = torch.cat((torch.zeros(n), torch.ones(n))).to(torch.int64)
    return x, y


class Classification(Problem):
    """Separate two Gaussian clusters with a 2→10→2 MLP and cross-entropy (full batch).

    The clusters are far apart (Bayes error about 0.2%), so accuracy saturates
    within a few steps, sometimes at initialisation; the target is therefore on
    the held-out cross-entropy, which keeps falling as the margin grows. The
    test and the validation sets are fresh draws of the same distribution, each
    from a generator stream of its own.
    """

    name = "classification"
    description = "2→10→2 MLP separates two Gaussian clusters at ±(2, 2)"
    params = (ACTIVATION,)
    batch_size = 200
    steps = 200
    eval_every = 10
    metrics = ("test_accuracy", "test_loss", "val_accuracy", "val_loss")
    target = Target("test_loss", 0.05, "min")
    validation_metric = "val_loss"
    chance_level: ClassVar[Mapping[str, float]] = {"test_accuracy": 0.5, "val_accuracy": 0.5}

    def build(self, ctx: BuildContext) -> Supervised:
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


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(Regression())
    registry.add(RegressionSequential())
    registry.add(Classification())
