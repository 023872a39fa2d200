"""The hook specifications: everything a plugin can contribute, in one place.

A plugin is any module or object with functions marked ``@harness.hookimpl``,
announced through an entry point in the ``harness`` group::

    [project.entry-points.harness]
    my-plugin = "my_package.plugin"

Built-in problems and optimizers use exactly this path. No hook here is
``firstresult``: every plugin's implementation is called, one plugin at a time,
through pluggy's hook caller, so that one plugin's failure is recorded against it
and never hides the others. For that reason an implementation marked
``hookwrapper``, ``wrapper``, ``tryfirst`` or ``trylast`` is refused when its plugin
loads (a load error naming the plugin): there is no chain of other plugins' calls
for it to wrap or to go before. ``HARNESS_TRACE_HOOKS=1`` prints every hook call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from harness.registry import (
        ExecutorRegistry,
        OptimizerRegistry,
        ProblemRegistry,
        ScheduleRegistry,
    )
    from harness.report.model import ReportFigure, ReportRun

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_problems(registry: ProblemRegistry) -> None:
    """Register benchmark problems (a model, its data, its step and its target).

    :param registry: call ``registry.add(problem)`` with a :class:`harness.Problem`
        instance for each problem; a name already taken raises
        :class:`harness.errors.DuplicateNameError` naming both plugins.
    :return: nothing; not ``firstresult``.
    """


@hookspec
def register_models(registry: ProblemRegistry) -> None:
    """The name :func:`register_problems` had before 0.2, kept as an alias: the same
    registry, called right after ``register_problems`` for each plugin.

    :param registry: as for :func:`register_problems`.
    :return: nothing; not ``firstresult``.
    """


@hookspec
def register_optimizers(registry: OptimizerRegistry) -> None:
    """Register named optimizers.

    :param registry: call ``registry.add(OptimizerSpec(...))`` for each optimizer,
        or ``registry.add_torch(name, torch.optim.X, **defaults)``; a name already
        taken raises :class:`harness.errors.DuplicateNameError` naming both plugins.
    :return: nothing; not ``firstresult``.
    """


@hookspec
def register_schedules(registry: ScheduleRegistry) -> None:
    """Register learning-rate schedules (``--set schedule=NAME``, ``schedules = [...]``).

    :param registry: call ``registry.add(ScheduleSpec(name, multiplier, defaults, ...))``
        from :mod:`harness.schedules`: ``multiplier(step, steps, **params)`` is the factor
        on the optimizer's learning rate at that step; a name already taken raises
        :class:`harness.errors.DuplicateNameError` naming both plugins.
    :return: nothing; not ``firstresult``.
    """


@hookspec
def register_executors(registry: ExecutorRegistry) -> None:
    """Register executors that run a grid's cells (``harness run --executor NAME``).

    :param registry: call ``registry.add(ExecutorSpec(name, factory, ...))`` from
        :mod:`harness.executor`; ``factory(exec_options, run_options, context)``
        returns an object with ``run(cells, on_start, on_window, on_result)``. A name
        already taken raises :class:`harness.errors.DuplicateNameError`.
    :return: nothing; not ``firstresult``.
    """


@hookspec
def manifest_metadata() -> dict[str, Any] | None:
    """Contribute extra entries to a run's ``manifest.json``.

    :return: a JSON-serialisable mapping stored under ``plugins_metadata`` keyed by
        the plugin's name, or ``None``; not ``firstresult``.
    """


@hookspec
def report_figures(run: ReportRun, problem: str) -> list[ReportFigure] | None:
    """Add pictures to one problem's section of ``harness report``.

    Called once for each problem (model name) in the run, on every plugin, one
    plugin at a time. A plugin that raises, or returns anything but a list of
    :class:`harness.report.ReportFigure`, is shown as an error in that section of
    the report; the report and the other plugins' figures are unaffected.

    :param run: the run being reported (:class:`harness.report.ReportRun`): its
        ``manifest``, ``summary`` and ``curves`` tables, and
        ``run.cells(problem)``, each finished cell with its ``artifacts``.
    :param problem: the model name whose section is being drawn.
    :return: the figures to add, in order, or ``None`` for a problem the plugin
        does not draw; not ``firstresult``.
    """
