"""The tutorial's over-fitting experiment: a huge net on 20 noisy points, with and without dropout.

The data is a straight line plus noise (std 0.3), so the best possible test MSE
is about 0.09; a 1→300→300→1 net can memorise the 20 training points instead.
``dropout=false`` shows the over-fit (train loss far below test loss);
``dropout=true`` inserts ``Dropout(0.5)`` after each hidden Linear, as the
tutorial's ``net_dropped`` does. The net and the data are in
:mod:`harness_builtins.nets.dropout`, imported when a cell is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import BuildContext, Param, Problem, ProblemRegistry, Target, hookimpl

if TYPE_CHECKING:  # torch is imported where a cell is built (harness_builtins.nets)
    from harness import Supervised

N_SAMPLES = 20
N_HIDDEN = 300
NOISE_STD = 0.3
#: The generator stream of the validation noise (training uses 0 and test 1, so adding
#: the split changed neither).
VALIDATION_STREAM = 2


class Dropout(Problem):
    """Fit 20 noisy points with a 1→300→300→1 net; full batch, as the tutorial.

    The test noise differs per seed, so ``test_loss`` has a seed-dependent floor
    near 0.09 (±0.03); the target only asks for the line to be found, and the
    experiment's point is the gap between ``train_loss`` and ``test_loss``.
    ``val_loss`` is scored on the same x with noise of its own.
    """

    name = "dropout"
    description = "1→300→300→1 net on 20 noisy points of a line: over-fitting vs Dropout(0.5)"
    params = (Param("dropout", True, help="Dropout(0.5) after each hidden Linear (net_dropped)"),)
    batch_size = N_SAMPLES
    steps = 500
    eval_every = 10
    metrics = ("train_loss", "test_loss", "val_loss")
    target = Target("test_loss", 0.15, "min")
    validation_metric = "val_loss"

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.dropout import build

        return build(ctx)


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(Dropout())
