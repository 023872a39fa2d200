"""The conformance suite: every check, for every selected problem and optimizer.

Collected when pytest runs with ``--harness-conformance=DIST`` (the plugin adds
this file to the run). Test names say the check and the subject::

    suite.py::test_problem_state_dict_round_trip[digits]
    suite.py::test_optimizer_honours_lr[lion]
    suite.py::test_schedule_final_rate[warmup-cosine]

so ``-k state_dict`` or ``-k lion`` select as expected. The checks themselves live
in :mod:`harness.testing.conformance`; this module only parametrizes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from harness.testing.conformance import (
    OPTIMIZER_CHECKS,
    PROBLEM_CHECKS,
    SCHEDULE_CHECKS,
    ConformanceFailure,
    ConformanceSkip,
    check_optimizer,
    check_problem,
    check_schedule,
)
from harness.testing.selection import Selection


@pytest.fixture(scope="session")
def harness_conformance(request: pytest.FixtureRequest) -> Selection:
    """The selection the plugin resolved at session start."""
    from harness.testing.plugin import selection

    return selection(request.config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    from harness.testing.plugin import selection

    chosen = selection(metafunc.config)
    for argname, names, what in (
        ("harness_problem", [p.name for p in chosen.problems], "problems"),
        ("harness_optimizer", [o.name for o in chosen.optimizers], "optimizers"),
        ("harness_schedule", [s.name for s in chosen.schedules], "schedules"),
        ("harness_plugin", [p.name for p in chosen.plugins], "plugins"),
    ):
        if argname not in metafunc.fixturenames:
            continue
        values: list[Any] = list(names) or [pytest.param(
            None, id="none",
            marks=pytest.mark.skip(reason=f"the selected plugins register no {what}"),
        )]
        metafunc.parametrize(argname, values)


def test_plugin_loads(harness_plugin: str, harness_conformance: Selection) -> None:
    """The plugin imports, implements only known hooks, and registers without errors."""
    info = next(p for p in harness_conformance.plugins if p.name == harness_plugin)
    where = f"plugin {info.label()}"
    if info.status == "not-selected":
        pytest.fail(f"{where} was not loaded: HARNESS_PLUGINS does not select it", pytrace=False)
    if info.status == "blocked":
        pytest.fail(f"{where} was not loaded: HARNESS_BLOCK_PLUGINS blocks it", pytrace=False)
    if info.status != "loaded":
        trace = f"\n{info.traceback.rstrip()}" if info.traceback else ""
        pytest.fail(f"conformance check 'loads' failed for {where}: {info.error}{trace}",
                    pytrace=False)


def _report(failure: ConformanceFailure) -> None:
    """A broken contract is reported by its message alone; when the plugin's own code
    raised, the traceback into that code is kept."""
    if failure.__cause__ is not None:
        raise failure
    pytest.fail(str(failure), pytrace=False)


def _problem_test(check: str) -> Callable[[str, Selection], None]:
    def test(harness_problem: str, harness_conformance: Selection) -> None:
        problem = harness_conformance.host.problems.get(harness_problem)
        try:
            check_problem(problem, check, harness_conformance.context)
        except ConformanceSkip as skip:
            pytest.skip(str(skip))
        except ConformanceFailure as failure:
            _report(failure)

    test.__name__ = test.__qualname__ = f"test_problem_{check}"
    test.__doc__ = PROBLEM_CHECKS[check].__doc__
    return test


def _optimizer_test(check: str) -> Callable[[str, Selection], None]:
    def test(harness_optimizer: str, harness_conformance: Selection) -> None:
        spec = harness_conformance.host.optimizers.get(harness_optimizer)
        try:
            check_optimizer(spec, check, harness_conformance.context)
        except ConformanceSkip as skip:
            pytest.skip(str(skip))
        except ConformanceFailure as failure:
            _report(failure)

    test.__name__ = test.__qualname__ = f"test_optimizer_{check}"
    test.__doc__ = OPTIMIZER_CHECKS[check].__doc__
    return test


def _schedule_test(check: str) -> Callable[[str, Selection], None]:
    def test(harness_schedule: str, harness_conformance: Selection) -> None:
        spec = harness_conformance.host.schedules.get(harness_schedule)
        try:
            check_schedule(spec, check, harness_conformance.context)
        except ConformanceSkip as skip:
            pytest.skip(str(skip))
        except ConformanceFailure as failure:
            _report(failure)

    test.__name__ = test.__qualname__ = f"test_schedule_{check}"
    test.__doc__ = SCHEDULE_CHECKS[check].__doc__
    return test


for _check in PROBLEM_CHECKS:
    globals()[f"test_problem_{_check}"] = _problem_test(_check)
for _check in OPTIMIZER_CHECKS:
    globals()[f"test_optimizer_{_check}"] = _optimizer_test(_check)
for _check in SCHEDULE_CHECKS:
    globals()[f"test_schedule_{_check}"] = _schedule_test(_check)
