"""The hook specifications: everything a plugin can contribute, in one place.

A plugin is any module or object with functions marked ``@harness.hookimpl``,
announced through an entry point in the ``harness`` group::

    [project.entry-points.harness]
    my-plugin = "my_package.plugin"

Built-in problems and optimizers use exactly this path. No hook here is
``firstresult``: every plugin's implementation is called, one at a time, so
that one plugin's failure is recorded against it and never hides the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from harness.registry import OptimizerRegistry, ProblemRegistry

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_models(registry: ProblemRegistry) -> None:
    """Register benchmark problems (a model, its data, its step and its target).

    :param registry: call ``registry.add(problem)`` with a :class:`harness.Problem`
        instance for each problem; a name already taken raises
        :class:`harness.errors.DuplicateNameError` naming both plugins.
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
def manifest_metadata() -> dict[str, Any] | None:
    """Contribute extra entries to a run's ``manifest.json``.

    :return: a JSON-serialisable mapping stored under ``plugins_metadata`` keyed by
        the plugin's name, or ``None``; not ``firstresult``.
    """
