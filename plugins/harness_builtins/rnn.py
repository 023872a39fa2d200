"""The tutorial's RNN regression: read sin(t) step by step and predict cos(t).

sin(t) alone does not determine cos(t) (its sign depends on whether the curve is
rising), so the network must remember the past. As in the tutorial the hidden
state is carried from one training window to the next and detached, which is
truncated back-propagation through time. That needs windows in order, not
shuffled samples, hence the custom batch source and the stateful model wrapper
(in :mod:`harness_builtins.nets.rnn`, imported when a cell is built).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from harness import BuildContext, Problem, ProblemRegistry, Target, hookimpl

if TYPE_CHECKING:  # torch is imported where a cell is built (harness_builtins.nets)
    from harness import Supervised

#: Points per training window (the tutorial's TIME_STEP).
TIME_STEP = 10
#: Spacing of the points: a window spans about half a period, as in the tutorial.
DT = math.pi / TIME_STEP
#: Windows per stream before the source wraps around and the state is reset.
TRAIN_WINDOWS = 100
#: Held-out streams, and windows scored on each after one unscored warm-up window.
EVAL_STREAMS = 16
EVAL_WINDOWS = 10
#: The generator stream the validation streams' phases come from (training uses 0 and
#: the test streams 1, so adding the split changed neither).
VALIDATION_STREAM = 2


class RnnRegression(Problem):
    """Map sin to cos with the tutorial's RNN, carrying the hidden state (truncated BPTT).

    ``batch_size`` is the number of parallel streams, each starting at its own
    seeded phase. The default is 16 rather than the tutorial's single stream:
    one stream makes a step almost all overhead and its gradient follows the
    curve's phase, while 16 keep a CPU step cheap and the gradient steadier.
    ``test_loss`` is the MSE on held-out streams further along the curve (past
    every training point), run from a zero state and scored after one warm-up
    window; ``val_loss`` the same on as many streams with phases of their own.
    """

    name = "rnn-regression"
    description = "RNN(1→32)+Linear maps sin(t) to cos(t), hidden state carried between windows"
    batch_size = 16
    steps = 400
    eval_every = 10
    metrics = ("test_loss", "val_loss")
    target = Target("test_loss", 0.005, "min")
    validation_metric = "val_loss"
    sample_unit = "windows"

    def build(self, ctx: BuildContext) -> Supervised:
        from harness_builtins.nets.rnn import build

        return build(ctx)


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(RnnRegression())
