"""Helpers the tests import (``from tests.helpers import run_cli``); fixtures live in
``conftest.py``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: The ten-line experiment of the docs ("Quick experiments without a package").
SIGN_SGD = '''\
import torch
from harness import hookimpl


class SignSGD(torch.optim.SGD):
    """SGD on the gradient's sign."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.sign_()
        return super().step(closure)


@hookimpl
def register_optimizers(registry):
    registry.add_torch("signsgd", SignSGD, lr=0.01)
'''

TESTS = Path(__file__).parent
#: The small plugin packages the tests install on purpose.
PACKAGES = TESTS / "packages"


def pythonpath(*paths: Path | str) -> str:
    """``PYTHONPATH`` for a subprocess: ``paths`` first, then the caller's own (a checkout
    run with ``PYTHONPATH=tree`` keeps testing that tree)."""
    given = [str(p) for p in paths] + os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return os.pathsep.join(p for p in given if p)


def outer_pytest_env(**extra: str) -> dict[str, str]:
    """This process's environment for a pytest run in a subprocess, without what
    pytest-xdist sets in its workers (pytest-benchmark disables timing when it sees them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    return {**env, **extra}


def pip_install(source: Path, target: Path, workdir: Path) -> None:
    """pip-install the package at ``source`` into the private directory ``target``, built
    from a copy in ``workdir``: a build writes ``build/`` and ``*.egg-info`` next to its
    sources, and two test processes (pytest-xdist) may build the same package at once."""
    import shutil

    copy = workdir / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(copy)],
        check=True, cwd=workdir, env={**os.environ, "PIP_NO_CACHE_DIR": "1"},
    )


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``harness`` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout,
    )


def run_with_fault(fault: str, *args: str, cwd: Path | None = None,
                   timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``harness ARGS`` in a subprocess with a fault of :mod:`tests.faults` installed."""
    path = os.pathsep.join(p for p in (str(TESTS.parent), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "tests.faults", fault, "--", *args], capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": path}, cwd=cwd, timeout=timeout,
    )


def wait_for(condition: Callable[[], object], what: str, *, timeout: float = 120,
             proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``condition`` until it holds: a test awaits a state instead of sleeping a guessed
    time. Fails naming ``what`` after ``timeout`` seconds (a hang, not a slow machine), or
    as soon as ``proc`` exits, with its stderr."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"the process exited before {what}: {err!r}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.05)


class _Stop(Exception):
    pass


def interrupted_then_resumed(cell: Any, problem: Any, spec: Any,
                             checkpoints: Path) -> tuple[Any, Any]:
    """Run ``cell`` whole, then again with a checkpoint every 20 steps, interrupted at step
    45 and resumed from its checkpoint (12 windows, evaluations every 20 steps): return the
    whole run's result and the resumed one's."""
    from harness.executor import RunOptions
    from harness.train.loop import run_cell

    whole = run_cell(cell, problem, spec, RunOptions(windows=12, eval_every=20))
    options = RunOptions(windows=12, eval_every=20, checkpoint_every=20,
                         checkpoint_dir=checkpoints)

    def interrupt(row: Mapping[str, Any], steps: int) -> None:
        if row["step"] == 45:
            raise _Stop

    assert run_cell(cell, problem, spec, options, on_window=interrupt).status == "error"
    return whole, run_cell(cell, problem, spec, options)


def same_curve_but_time(whole: Any, resumed: Any) -> bool:
    """Whether two results' curves are identical but for their ``elapsed_s``."""
    return bool(resumed.curve == tuple({**r, "elapsed_s": s["elapsed_s"]}
                                       for r, s in zip(whole.curve, resumed.curve,
                                                       strict=True)))
