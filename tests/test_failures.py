"""Failures you see: the closing table and ``harness show`` say why each cell is not ok,
``harness run`` exits with EXIT_CELLS_FAILED when one broke (``--fail-on`` chooses), and
``harness show --status`` filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from harness import OptimizerSpec, hookimpl
from harness.cli import main
from harness.outcome import EXIT_CELLS_FAILED

#: Longer than the one line a reason gets.
LONG = "the settings are wrong: " + "x" * 300


def _raises(params: Any, lr: float = 0.01) -> torch.optim.Optimizer:
    raise ValueError(LONG)


class _Plugin:
    @hookimpl
    def register_optimizers(self, registry):  # type: ignore[no-untyped-def]
        registry.add(OptimizerSpec("ab-raise", _raises, {"lr": 0.01}, "always raises"))


@pytest.fixture
def failing(register_plugin: Any) -> None:
    register_plugin(_Plugin(), "raising-plugin")


def _run(out: Path, *extra: str) -> int:
    return main(["run", "-m", "regression", "-o", "ab-raise,sgd", "-s", "0", "--steps", "3",
                 "--workers", "0", "--out", str(out), "--quiet", *extra])


def test_run_says_why_a_cell_failed_and_exits_non_zero(
        failing: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "run") == EXIT_CELLS_FAILED
    seen = capsys.readouterr()
    assert "Not ok (1 of 2 cells):" in seen.out
    [line] = [t for t in seen.out.splitlines() if "ab-raise [lr=0.01]" in t]
    assert line.startswith("  regression [activation=relu] ab-raise [lr=0.01] cpu seed 0: "
                           "error: ValueError: the settings are wrong: xxx")
    assert line.endswith("...") and len(line) < 250  # one line, cut
    assert "(--errors prints each reason in full, with its traceback)" in seen.out
    assert f"1 error: exit code {EXIT_CELLS_FAILED} (--fail-on none" in seen.err


def test_errors_prints_the_whole_reason_and_the_traceback(
        failing: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "run", "--errors") == EXIT_CELLS_FAILED
    out = capsys.readouterr().out
    assert f"error: ValueError: {LONG}\n" in out
    assert "Traceback (most recent call last):" in out and "in _raises" in out


@pytest.mark.parametrize(("fail_on", "code"), [("none", 0), ("diverged", 0),
                                               ("error", EXIT_CELLS_FAILED),
                                               ("timeout,error", EXIT_CELLS_FAILED)])
def test_fail_on_chooses_the_statuses_that_fail_the_run(
        failing: None, tmp_path: Path, fail_on: str, code: int) -> None:
    assert _run(tmp_path / "run", "--fail-on", fail_on) == code


@pytest.mark.parametrize(("argv", "words"), [
    (["run", "-m", "regression", "--dry-run", "--fail-on", "eror"],
     "--fail-on: unknown status 'eror'; known: ok, diverged, timeout, oom, error, skipped, "
     "pruned, none"),
    (["run", "-m", "regression", "--dry-run", "--fail-on", ","], "--fail-on: expected statuses"),
    (["show", ".", "--status", "none"], "--status: unknown status 'none'"),
])
def test_bad_statuses_are_one_line(argv: list[str], words: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: error: ") and words in err and err.count("\n") == 1


def test_a_diverged_cell_is_shown_but_fails_nothing_by_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "adam", "-s", "0", "--steps", "20",
                 "--set", "adam.lr=1e30", "--workers", "0", "--out", str(out), "--quiet"]) == 0
    assert ": diverged: loss " in capsys.readouterr().out
    assert main(["run", "--resume", str(out), "--rerun-failed", "--workers", "0", "--quiet",
                 "--fail-on", "diverged"]) == EXIT_CELLS_FAILED


def test_show_filters_by_status_and_says_why(
        failing: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    _run(out)
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert " sgd " in shown and "Not ok (1 of 2 cells):" in shown
    assert main(["show", str(out), "--status", "error"]) == 0
    table, _, failures = capsys.readouterr().out.partition("Not ok")
    assert " sgd " not in table and "ab-raise" in table
    assert "error: ValueError: the settings are wrong" in failures
    assert main(["show", str(out), "--status", "ok"]) == 0
    shown = capsys.readouterr().out.split("\n", 1)[1]  # after the command line
    assert " sgd " in shown and "ab-raise" not in shown and "Not ok" not in shown
    assert main(["show", str(out), "--status", "error", "--errors"]) == 0
    shown = capsys.readouterr().out
    assert LONG in shown and "Traceback (most recent call last):" in shown


def test_onednn_failing_to_create_a_primitive_is_oom_only_under_a_memory_limit() -> None:
    """oneDNN reports a CPU convolution's failed allocation as "could not create a
    primitive" (the cnn under --max-memory-mb 50, test_readme_audit): out of memory where
    the address space is limited, an error where it is not."""
    import resource

    from harness.outcome import Status
    from harness.train.failures import classify

    failure = RuntimeError("could not create a primitive")
    previous = resource.getrlimit(resource.RLIMIT_AS)
    assert previous[0] == resource.RLIM_INFINITY
    assert classify(failure)[0] == Status.ERROR
    # a finite limit this process stays far below
    limit = 1 << 45 if previous[1] == resource.RLIM_INFINITY else previous[1]
    resource.setrlimit(resource.RLIMIT_AS, (limit, previous[1]))
    try:
        assert classify(failure)[0] == Status.OOM
        assert classify(RuntimeError("could not create a tensor"))[0] == Status.ERROR
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous)
