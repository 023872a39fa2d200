"""The tutorial's first networks: 1-D regression and two-cluster classification.

``regression`` and ``regression-sequential`` learn the same curve with the same
architecture, written once as a ``Net`` class and once with ``nn.Sequential``;
the harness seeds the global RNG before ``build``, so both start from identical
weights and should train identically. The networks and data are in
:mod:`harness_builtins.nets.mlp`, imported when a cell is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from harness import BuildContext, Param, Problem, ProblemRegistry, Target, hookimpl

if TYPE_CHECKING:  # torch is imported where a cell is built (harness_builtins.nets)
    from torch import nn

    from harness import Supervised

#: The hidden layer's activations, by name (``nets.mlp.ACTIVATIONS`` has their functions).
ACTIVATION_NAMES = ("relu", "sigmoid", "tanh", "softplus")
ACTIVATION = Param("activation", "relu", choices=ACTIVATION_NAMES, help="hidden-layer activation")

REGRESSION_TRAIN = 1_000
REGRESSION_TEST = 200
CLUSTER_SIZE = 100
#: The generator stream (``ctx.cpu_generator(offset)``) the validation split is drawn
#: from: training data uses 0 and test data 1, so adding the split changed neither.
VALIDATION_STREAM = 2


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
        from harness_builtins.nets.mlp import Net

        return Net(1, 10, 1, activation)

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.mlp import build_regression

        return build_regression(ctx, self.make_model)


class RegressionSequential(Regression):
    """The same problem with the net built by ``nn.Sequential`` (the tutorial's quick way)."""

    name = "regression-sequential"
    description = "1→10→1 MLP (nn.Sequential) fits y = x² + 0.2·U(0,1) noise on [-1, 1]"

    def make_model(self, activation: str) -> nn.Module:
        from harness_builtins.nets.mlp import sequential_net

        return sequential_net(activation)


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
        from harness_builtins.nets.mlp import build_classification

        return build_classification(ctx)


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(Regression())
    registry.add(RegressionSequential())
    registry.add(Classification())
