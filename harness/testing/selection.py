"""Which plugins, problems and optimizers a conformance run covers.

``--harness-conformance`` takes comma-separated patterns matched (``fnmatch``)
against each plugin's entry-point name and distribution name, as
``HARNESS_PLUGINS`` does; ``all`` covers every plugin that was loaded or failed to
load, and ``harness`` the built-ins. Plugins are discovered as ``harness run``
discovers them, so the environment switches apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import UsageError
from harness.optimizer import OptimizerSpec
from harness.plugins import HOST_DISTRIBUTION, PluginHost
from harness.plugins.host import _matches
from harness.problem import Problem
from harness.registry import PluginInfo
from harness.schedules import ScheduleSpec
from harness.testing.conformance import CheckContext, Settings

ALL = "all"


def split_patterns(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(p.strip() for v in values for p in v.split(",") if p.strip())


@dataclass(frozen=True)
class Selection:
    """What the suite checks: the matched plugins and what they registered."""

    patterns: tuple[str, ...]
    host: PluginHost
    plugins: tuple[PluginInfo, ...]
    problems: tuple[Problem, ...]
    optimizers: tuple[OptimizerSpec, ...]
    context: CheckContext
    schedules: tuple[ScheduleSpec, ...] = ()

    def describe(self) -> str:
        plugins = ", ".join(f"{p.name} ({p.distribution or 'in-process'})" for p in self.plugins)
        return (f"{len(self.problems)} problems, {len(self.optimizers)} optimizers, "
                f"{len(self.schedules)} schedules from {plugins}")


def select(values: Iterable[str], settings: Settings | None = None,
           host: PluginHost | None = None) -> Selection:
    """Resolve the patterns against the installed plugins; UsageError when none matches."""
    patterns = split_patterns(values) or (ALL,)
    host = host or PluginHost()
    candidates = [p for p in host.plugins if p.status not in ("not-selected", "blocked")]
    if ALL in patterns:
        chosen = candidates
    else:
        chosen = [p for p in host.plugins if _matches(patterns, p.name, p.distribution)]
    if not chosen:
        installed = sorted({p.distribution or p.name for p in host.plugins})
        raise UsageError(
            f"--harness-conformance={','.join(patterns)} matches no harness plugin "
            f"(distributions with plugins: {', '.join(installed) or 'none'}); "
            "is the package installed in this environment?"
        )
    names = {p.name for p in chosen}
    problems = tuple(host.problems.get(n) for n in host.problems.names()
                     if host.problems.owner(n).name in names)
    optimizers = tuple(host.optimizers.get(n) for n in host.optimizers.names()
                       if host.optimizers.owner(n).name in names)
    schedules = tuple(host.schedules.get(n) for n in host.schedules.names()
                      if host.schedules.owner(n).name in names)
    # Optimizers are tried on the problems under test and on the built-ins, whose
    # parameter groups (convolutions, LSTMs, batch norm, several roles) vary.
    builtins = tuple(host.problems.get(n) for n in host.problems.names()
                     if host.problems.owner(n).distribution == HOST_DISTRIBUTION)
    reference = problems + tuple(p for p in builtins if p not in problems)
    return Selection(
        patterns=patterns, host=host, plugins=tuple(chosen), problems=problems,
        optimizers=optimizers, context=CheckContext(settings, reference), schedules=schedules,
    )
