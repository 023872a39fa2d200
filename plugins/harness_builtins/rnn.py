"""The tutorial's RNN regression: read sin(t) step by step and predict cos(t).

sin(t) alone does not determine cos(t) (its sign depends on whether the curve is
rising), so the network must remember the past. As in the tutorial the hidden
state is carried from one training window to the next and detached, which is
truncated back-propagation through time. That needs windows in order, not
shuffled samples, hence the custom batch source and the stateful model wrapper.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Problem, ProblemRegistry, Supervised, Target, hookimpl

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


class RNN(nn.Module):
    """The tutorial's net: RNN(1→32), with one Linear(32→1) applied to every time step."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(input_size=1, hidden_size=32, num_layers=1, batch_first=True)
        self.out = nn.Linear(32, 1)

    def forward(self, x: Tensor, h_state: Tensor | None) -> tuple[Tensor, Tensor]:
        r_out, h_state = self.rnn(x, h_state)  # x, r_out: (batch, time_step, features)
        return self.out(r_out), h_state  # Linear acts on the last dim: every time step


class CarriedState(nn.Module):
    """Runs :class:`RNN` from the hidden state the previous training window left.

    In training mode the state is stored, detached, after each call (it is a plain
    attribute, not a buffer, so it stays out of state dicts); in eval mode every
    call starts from zeros and leaves the stored state alone.
    """

    def __init__(self, net: RNN) -> None:
        super().__init__()
        self.net = net
        self.h_state: Tensor | None = None

    def reset_state(self) -> None:
        self.h_state = None

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor
        if not self.training:
            out, _ = self.net(x, None)
            return out
        if self.h_state is not None and self.h_state.shape[1] != x.shape[0]:
            self.h_state = None
        out, h_state = self.net(x, self.h_state)
        self.h_state = h_state.detach()
        return out


def sine_streams(phases: Tensor, start: float, points: int) -> tuple[Tensor, Tensor]:
    """sin and cos at ``phases + start + k·DT`` for k < points, each (streams, points, 1)."""
    t = phases[:, None] + start + DT * torch.arange(points, dtype=torch.float32)[None, :]
    return torch.sin(t).unsqueeze(-1), torch.cos(t).unsqueeze(-1)


class SineWindows:
    """Consecutive windows along ``batch`` parallel streams, in order.

    ``x`` and ``y`` are (windows, streams, TIME_STEP, 1) on the device; step k
    yields window k of every stream. After the last window it starts again at
    the first and calls ``on_wrap``, because the carried state no longer matches
    the data that follows.
    """

    def __init__(self, x: Tensor, y: Tensor, carrier: CarriedState) -> None:
        self.x = x
        self.y = y
        self.carrier = carrier
        self.windows = int(x.shape[0])
        self._pos = self.windows  # the first call wraps: starts from a zero state

    def next(self) -> tuple[Tensor, Tensor]:
        if self._pos >= self.windows:
            self._pos = 0
            self.carrier.reset_state()
        k = self._pos
        self._pos += 1
        return self.x[k], self.y[k]

    def state_dict(self) -> dict[str, Any]:
        """Position and the carried hidden state: enough to resume a cell exactly."""
        return {"pos": self._pos, "h_state": self.carrier.h_state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._pos = int(state["pos"])
        h = state["h_state"]
        self.carrier.h_state = None if h is None else h.to(self.x.device)


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
        streams = ctx.batch_size
        phases = 2 * math.pi * torch.rand(streams, generator=ctx.cpu_generator(0))
        x, y = sine_streams(phases, 0.0, TRAIN_WINDOWS * TIME_STEP)
        # (streams, windows·T, 1) -> (windows, streams, T, 1): one contiguous block per step
        x_w = x.view(streams, TRAIN_WINDOWS, TIME_STEP, 1).transpose(0, 1).contiguous()
        y_w = y.view(streams, TRAIN_WINDOWS, TIME_STEP, 1).transpose(0, 1).contiguous()
        x_w, y_w = x_w.to(ctx.device), y_w.to(ctx.device)

        eval_phases = 2 * math.pi * torch.rand(EVAL_STREAMS, generator=ctx.cpu_generator(1))
        eval_start = TRAIN_WINDOWS * TIME_STEP * DT + 2 * math.pi
        test_x, test_y = sine_streams(eval_phases, eval_start, (1 + EVAL_WINDOWS) * TIME_STEP)
        test_t = eval_start + eval_phases[0] + DT * torch.arange(test_x.shape[1])
        test_x, test_y = test_x.to(ctx.device), test_y.to(ctx.device)
        val_phases = 2 * math.pi * torch.rand(
            EVAL_STREAMS, generator=ctx.cpu_generator(VALIDATION_STREAM))
        val_x, val_y = sine_streams(val_phases, eval_start, (1 + EVAL_WINDOWS) * TIME_STEP)
        val_x, val_y = val_x.to(ctx.device), val_y.to(ctx.device)

        model = CarriedState(RNN()).to(ctx.device)
        loss_fn = nn.MSELoss()
        scored = slice(TIME_STEP, None)  # after the warm-up window

        def evaluate(m: nn.Module) -> Mapping[str, float]:
            prediction, val_prediction = m(test_x), m(val_x)
            return {"test_loss": float(loss_fn(prediction[:, scored], test_y[:, scored])),
                    "val_loss": float(loss_fn(val_prediction[:, scored], val_y[:, scored]))}

        def artifacts(m: nn.Module) -> Mapping[str, Any]:
            was_training = m.training
            m.eval()
            try:
                with torch.no_grad():
                    prediction = m(test_x[:1])
            finally:
                m.train(was_training)
            return {
                "x": test_t.tolist(),
                "input": test_x[0, :, 0].tolist(),
                "y": test_y[0, :, 0].tolist(),
                "prediction": prediction[0, :, 0].tolist(),
            }

        return Supervised(
            model=model,
            loss_fn=loss_fn,
            inputs=x_w.flatten(0, 1),
            targets=y_w.flatten(0, 1),
            evaluate=evaluate,
            batches=SineWindows(x_w, y_w, model),
            capturable=False,  # the carried hidden state changes between steps
            artifacts=artifacts,
        )


@hookimpl
def register_problems(registry: ProblemRegistry) -> None:
    registry.add(RnnRegression())
