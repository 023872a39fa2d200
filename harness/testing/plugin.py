"""harness's pytest plugin, for plugin authors: the conformance suite and three fixtures.

Registered as the ``pytest11`` entry point ``harness``, so every pytest run in an
environment with harness installed loads it (``-p no:harness`` turns it off).
It therefore imports nothing heavy here and does nothing unless asked:

* ``--harness-conformance=DIST`` adds :mod:`harness.testing.suite` to the run: every
  conformance check for every problem and optimizer that DIST registers (patterns,
  comma-separated or repeated; ``all`` for every plugin, ``harness`` for the
  built-ins). Without other paths on the command line only the suite runs.
* ``harness_host``: a plugin host with only the selected plugins (the
  ``harness_plugins`` marker, else the ``harness_plugins`` ini option, else the
  ``HARNESS_PLUGINS`` environment switch, else every installed plugin), installed
  as the process-wide host for the test.
* ``harness_run_cell(problem, optimizer="adam", **options)``: runs one cell, returns
  its :class:`harness.outcome.CellResult`.
* ``harness_cell(problem, optimizer="adam", steps=20, ...)``: times rounds of one
  cell's training steps under pytest-benchmark's ``benchmark.pedantic``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from harness.outcome import CellResult
    from harness.plugins import PluginHost
    from harness.testing.cells import CellTiming
    from harness.testing.selection import Selection

SUITE = Path(__file__).with_name("suite.py")
MARKER = "harness_plugins"
SUITE_ID = "harness-conformance"
_SELECTION = pytest.StashKey["Selection"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "harness plugin conformance kit")
    group.addoption(
        "--harness-conformance", action="append", default=[], metavar="DIST",
        dest="harness_conformance",
        help="run harness's conformance suite on the problems and optimizers registered by "
             "these distributions or plugins (comma-separated fnmatch patterns; 'all' for "
             "every plugin, 'harness' for the built-ins)",
    )
    parser.addini(
        MARKER, type="args", default=[],
        help="harness plugins (entry-point or distribution patterns) the harness_host "
             "fixture loads; default: the HARNESS_PLUGINS switch, else all installed",
    )


def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    """With --harness-conformance, collect the suite (the documented way to add arguments)."""
    if getattr(early_config.known_args_namespace, "harness_conformance", None) and \
            str(SUITE) not in args:
        args.append(str(SUITE))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*patterns): the harness plugins the harness_host fixture loads "
        "(entry-point or distribution names, fnmatch patterns)",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    values = config.getoption("harness_conformance")
    return f"harness conformance: {','.join(values)}" if values else None


def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> pytest.Module | None:
    """Outside the rootdir (harness installed in site-packages) the suite's test ids would
    start with a bare "::"; name the module "harness-conformance" there instead."""
    if module_path != SUITE:
        return None
    try:
        module_path.relative_to(parent.config.rootpath)
    except ValueError:
        return pytest.Module.from_parent(parent, path=module_path, nodeid=SUITE_ID)
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    """Resolve the selection once, so that a pattern matching nothing is a usage error."""
    if session.config.getoption("harness_conformance"):
        selection(session.config)


def selection(config: pytest.Config) -> Selection:
    """The conformance selection of this run (every plugin when the option is absent)."""
    if _SELECTION not in config.stash:
        from harness.errors import UsageError
        from harness.testing.selection import select

        try:
            config.stash[_SELECTION] = select(config.getoption("harness_conformance"))
        except UsageError as exc:
            raise pytest.UsageError(str(exc)) from None
    return config.stash[_SELECTION]


# -- fixtures for authors' own tests ---------------------------------------------------
def _plugin_patterns(request: pytest.FixtureRequest) -> list[str] | None:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        return [str(a) for a in marker.args]
    configured = request.config.getini(MARKER)
    return list(configured) if configured else None


@pytest.fixture
def harness_host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> PluginHost:
    """A plugin host with only the selected plugins, used by ``get_host()`` during the test.

    Select with ``@pytest.mark.harness_plugins("my-dist", "harness")`` or the
    ``harness_plugins`` ini option; ``HARNESS_PLUGINS`` is set to the selection for the
    test, so subprocesses (``harness run``) see the same plugins. When a selection is
    given, a selected plugin that fails to load fails the test with its error.
    Register in-process plugins with ``harness_host.register(obj, name)``.
    """
    from harness import plugins
    from harness.plugins import host as host_module

    patterns = _plugin_patterns(request)
    if patterns is not None:
        monkeypatch.setenv(plugins.ENV_LOAD, ",".join(patterns))
    host = plugins.PluginHost()
    monkeypatch.setattr(host_module, "_HOST", host)
    if patterns is not None:
        broken = [f"{p.label()}: {p.error}" + (f"\n{p.traceback.rstrip()}" if p.traceback else "")
                  for p in host.plugins if p.status == "error"]
        if broken:
            pytest.fail("harness plugins failed to load:\n" + "\n".join(broken), pytrace=False)
    return host


def _skip_unavailable(options: dict[str, Any]) -> None:
    from harness.testing.cells import unavailable_reason

    device = str(options.get("device", "cpu"))
    reason = unavailable_reason(device)
    if reason is not None:
        pytest.skip(f"device {device!r} is not available: {reason}")


@pytest.fixture
def harness_run_cell(harness_host: PluginHost) -> Callable[..., CellResult]:
    """``run(problem, optimizer="adam", *, steps=, batch_size=, seed=0, device="cpu",
    params={}, hyper={}, windows=10, eval_every=None)``: one cell's record.

    Defaults are the problem's and the optimizer's, as for ``harness run``; a device
    this machine lacks skips the test.
    """
    from harness.testing.cells import run_one_cell

    def run(problem: str, optimizer: str = "adam", **options: Any) -> CellResult:
        _skip_unavailable(options)
        return run_one_cell(harness_host, problem, optimizer, **options)

    return run


@pytest.fixture
def harness_cell(request: pytest.FixtureRequest,
                 harness_host: PluginHost) -> Callable[..., CellTiming]:
    """``time(problem, optimizer="adam", *, steps=20, rounds=5, warmup_rounds=1, **cell)``.

    Times ``rounds`` rounds of ``steps`` training steps of one cell with
    pytest-benchmark's ``benchmark.pedantic`` (after ``warmup_rounds`` untimed
    rounds), the device synchronised before and after each round, so
    ``--benchmark-compare`` and ``--benchmark-compare-fail`` work on the model's
    step time. ``benchmark.extra_info`` records the cell and ``samples_per_s``.
    Under ``--benchmark-disable`` the steps run once, untimed (a smoke test).
    Usable once per test, like ``benchmark``.
    """
    try:
        benchmark = request.getfixturevalue("benchmark")
    except pytest.FixtureLookupError:
        pytest.fail("harness_cell needs pytest-benchmark: pip install pytest-benchmark",
                    pytrace=False)
    from harness.testing.cells import time_cell

    def time(problem: str, optimizer: str = "adam", *, steps: int = 20, rounds: int = 5,
             warmup_rounds: int = 1, **options: Any) -> CellTiming:
        _skip_unavailable(options)

        def runner(target: Callable[[], None], setup: Callable[[], None], rounds: int,
                   warmup_rounds: int) -> None:
            benchmark.pedantic(target, setup=setup, rounds=rounds,
                               warmup_rounds=warmup_rounds, iterations=1)

        timing = time_cell(harness_host, problem, optimizer, steps=steps, rounds=rounds,
                           warmup_rounds=warmup_rounds, runner=runner, **options)
        cell = timing.cell
        info = benchmark.extra_info
        info.update(problem=cell.problem, optimizer=cell.optimizer, device=cell.device,
                    seed=cell.seed, batch_size=cell.batch_size, steps_per_round=steps,
                    samples_per_round=timing.samples_per_round)
        stats = getattr(benchmark, "stats", None)
        if stats is not None:
            timing.seconds = list(stats.stats.data)
            info["samples_per_s"] = timing.samples_per_s(stats.stats.median)
        return timing

    return time
