"""The built-in learning-rate schedules: constant (the default), cosine, warmup-cosine,
linear and step. Each is a multiplier of the optimizer's own learning rate at a step; the
decaying ones reach ``final_lr_ratio`` at the cell's last step."""

from __future__ import annotations

import math

from harness import hookimpl
from harness.registry import ScheduleRegistry
from harness.schedules import ScheduleSpec, warmup_steps
from harness.space import SearchSpace


def constant(step: int, steps: int) -> float:
    return 1.0


def _cosine(t: float, final_lr_ratio: float) -> float:
    return final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine(step: int, steps: int, final_lr_ratio: float = 0.0) -> float:
    last = steps - 1
    return _cosine(step / last if last > 0 else 1.0, final_lr_ratio)


def warmup_cosine(step: int, steps: int, warmup: float = 0.05,
                  final_lr_ratio: float = 0.0) -> float:
    w = min(warmup_steps(warmup, steps), steps - 1)  # the last step is on the decay
    if step < w:
        return (step + 1) / w
    span = steps - 1 - w
    return _cosine((step - w) / span if span > 0 else 1.0, final_lr_ratio)


def linear(step: int, steps: int, final_lr_ratio: float = 0.0) -> float:
    last = steps - 1
    t = step / last if last > 0 else 1.0
    return 1.0 + (final_lr_ratio - 1.0) * t


def _period(every: float, steps: int) -> int:
    return max(1, round(every * steps) if every < 1 else int(every))


def step_decay(step: int, steps: int, every: float = 0.3, gamma: float = 0.1) -> float:
    return float(gamma ** (step // _period(every, steps)))


# What each schedule declares, for the conformance kit to check against the multipliers.
def _step_final(steps: int, every: float, gamma: float) -> float:
    return float(gamma ** ((steps - 1) // _period(every, steps)))


def _warmup_start(steps: int, warmup: float, final_lr_ratio: float) -> float:
    w = min(warmup_steps(warmup, steps), steps - 1)
    return 1.0 / w if w > 0 else 1.0


@hookimpl
def register_schedules(registry: ScheduleRegistry) -> None:
    registry.add(ScheduleSpec("constant", constant, {},
                              "the learning rate as the optimizer sets it (the default)",
                              final=1.0))
    ratio = {"final_lr_ratio": SearchSpace.linear(0.0, 0.5)}
    registry.add(ScheduleSpec("cosine", cosine, {"final_lr_ratio": 0.0},
                              "cosine decay to final_lr_ratio x lr at the last step",
                              space=ratio, final="final_lr_ratio"))
    registry.add(ScheduleSpec(
        "warmup-cosine", warmup_cosine, {"warmup": 0.05, "final_lr_ratio": 0.0},
        "linear warm-up over warmup (a fraction of the steps below 1, else a count), then "
        "cosine decay to final_lr_ratio x lr",
        space={"warmup": SearchSpace.linear(0.0, 0.3), **ratio},
        final="final_lr_ratio", warmup="warmup", warmup_start=_warmup_start))
    registry.add(ScheduleSpec("linear", linear, {"final_lr_ratio": 0.0},
                              "linear decay to final_lr_ratio x lr at the last step",
                              space=ratio, final="final_lr_ratio"))
    registry.add(ScheduleSpec("step", step_decay, {"every": 0.3, "gamma": 0.1},
                              "multiply by gamma every `every` steps (a fraction below 1)",
                              space={"every": SearchSpace.linear(0.1, 0.5),
                                     "gamma": SearchSpace.log(0.01, 0.9)},
                              final=_step_final))
