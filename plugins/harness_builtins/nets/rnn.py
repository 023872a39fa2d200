"""The torch side of :mod:`harness_builtins.rnn`: the tutorial's RNN, the wrapper that
carries its hidden state between training windows, the sine streams and their in-order
batch source, and what a cell builds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from harness import BuildContext, Supervised
from harness_builtins.rnn import (
    DT,
    EVAL_STREAMS,
    EVAL_WINDOWS,
    TIME_STEP,
    TRAIN_WINDOWS,
    VALIDATION_STREAM,
)


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


def build(ctx: BuildContext) -> Supervised:
    """An ``rnn-regression`` cell: ``ctx.batch_size`` training streams cut into windows,
    the held-out test and validation streams, and the RNN carrying its state."""
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
