"""Problems that fail in every way a real one can: hang, abort, raise, NaN, eat memory,
or start a child process and hang (``fault-fork``: a data loader's workers, a simulator).

Each trains a linear unit normally and misbehaves at step ``at`` (a parameter).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

import harness


def _fault(kind: str, tag: str = "") -> Callable[[int], None]:
    hog: list[Any] = []

    def misbehave(step: int) -> None:
        if kind == "fork":  # a child that outlives its cell unless its group is killed
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", tag],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            kind_then = "hang"
        else:
            kind_then = kind
        if kind_then == "hang":
            while True:
                time.sleep(0.05)
        elif kind_then == "abort":
            os.abort()
        elif kind_then == "raise":
            raise RuntimeError(f"injected failure at step {step}")
        elif kind_then == "memory":
            while True:  # until the allocator fails or the process is killed
                hog.append(torch.ones(64 * 2**20, dtype=torch.uint8))

    return misbehave


class Faulty(harness.Problem):
    description = "a linear unit that misbehaves at step `at`"
    steps = 40
    batch_size = 16
    metrics = ("test_loss",)
    target = harness.Target("test_loss", 0.01)
    params = (harness.Param("at", 5),)

    def __init__(self, kind: str) -> None:
        self.name = f"fault-{kind}"
        self.kind = kind

    def build(self, ctx: harness.BuildContext) -> harness.Supervised:
        x = torch.rand(128, 1, generator=ctx.cpu_generator()).to(ctx.device)
        y = 3 * x
        model = nn.Linear(1, 1).to(ctx.device)
        at = int(ctx.params["at"])
        calls = {"n": 0}
        misbehave = _fault(self.kind, str(ctx.params.get("tag", "")))

        def loss_fn(out: Tensor, target: Tensor) -> Tensor:
            calls["n"] += 1
            loss = nn.functional.mse_loss(out, target)
            if calls["n"] >= at:
                if self.kind == "nan":
                    return loss * float("nan")
                misbehave(calls["n"])
            return loss

        def evaluate(m: nn.Module) -> dict[str, float]:
            return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

        return harness.Supervised(model=model, loss_fn=loss_fn, inputs=x, targets=y,
                                  evaluate=evaluate)


class Forking(Faulty):
    description = "a linear unit that starts a sleeping child at step `at`, then hangs"
    #: ``tag``: the child's last argument, so that a test can find it.
    params = (harness.Param("at", 5), harness.Param("tag", "sleeper"))


@harness.hookimpl
def register_models(registry: harness.ProblemRegistry) -> None:
    for kind in ("hang", "abort", "raise", "nan", "memory"):
        registry.add(Faulty(kind))
    registry.add(Forking("fork"))
