"""The tutorial's batch-normalisation experiment: a deep, badly initialised net on y = x² - 5.

Eight hidden layers of ten units start with small weights (N(0, 0.1)) and a
negative bias (-0.2); without batch norm the signal shrinks or saturates layer
after layer and training stalls. ``batch_norm=true`` adds ``BatchNorm1d`` on the
input and after every hidden Linear, as the tutorial's ``Net(batch_normalization=True)``.
The net and the data are in :mod:`harness_builtins.nets.batchnorm`, imported when a cell
is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import BuildContext, Param, Problem, ProblemRegistry, Target, hookimpl

if TYPE_CHECKING:  # torch is imported where a cell is built (harness_builtins.nets)
    from harness import Supervised

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
#: The hidden activations, by name (``nets.batchnorm.ACTIVATIONS`` has their functions).
ACTIVATION_NAMES = ("tanh", "relu")


class BatchNorm(Problem):
    """Regress y = x² - 5 + noise with the tutorial's 8-layer net, with or without batch norm.

    The noise variance (4) is the floor of ``test_loss``; predicting the mean
    scores about 680. ``val_loss`` is scored on the test points' x with noise of its own.
    """

    name = "batchnorm"
    description = "8-layer net (N(0,0.1) init, bias -0.2) regresses x² - 5, with/without BatchNorm"
    params = (
        Param("activation", "tanh", choices=ACTIVATION_NAMES, help="hidden activation"),
        Param("batch_norm", True, help="BatchNorm1d(momentum=0.5) on the input and each layer"),
    )
    batch_size = 64
    steps = 1_500
    metrics = ("test_loss", "val_loss")
    target = Target("test_loss", 50.0, "min")
    validation_metric = "val_loss"

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.batchnorm import build

        return build(ctx)


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(BatchNorm())
