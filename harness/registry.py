"""Typed registries handed to the registration hooks."""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from harness.errors import DuplicateNameError, UsageError
from harness.executor import ExecutorSpec
from harness.optimizer import PLAIN, Capabilities, OptimizerSpec, check_spec
from harness.params import check_field_name
from harness.problem import Param, Problem, check_name
from harness.schedules import ScheduleSpec, check_schedule
from harness.space import SearchSpace

if TYPE_CHECKING:
    from torch.optim import Optimizer


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as discovered: its entry point name, distribution and load state."""

    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None
    #: "loaded", "error", "blocked" or "not-selected".
    status: str = "loaded"
    #: Why it failed, one line ending with the failing frame's ``(at FILE:LINE)``.
    error: str | None = None
    #: The full traceback of that failure (``harness list --verbose``, ``list --json``).
    traceback: str | None = None
    #: A plugin loaded from a file (``--plugin PATH``): its absolute path, and the
    #: ``sha256:<hex>`` of its source when it was loaded.
    source: str | None = None
    #: The ``sha256:<hex>`` of the source of a plugin file, or of an installed plugin's
    #: package when its distribution was installed editable or from a local path.
    sha256: str | None = None
    #: The distributions the plugin declares it wraps (``harness_wraps`` on its module),
    #: with their installed versions.
    wraps: tuple[tuple[str, str], ...] = ()

    def label(self) -> str:
        if self.source:
            return f"{self.name!r} from {self.source}"
        dist = f" from {self.distribution} {self.version}" if self.distribution else ""
        return f"{self.name!r}{dist}"


T = TypeVar("T")


class _Registry(Generic[T]):
    kind = "item"

    def __init__(self) -> None:
        self._items: dict[str, tuple[T, PluginInfo]] = {}
        self._owner = PluginInfo(name="<unknown>")
        #: Plugins that failed to load, and the names a failed plugin had registered
        #: before it failed (undone): an unknown name's message points at them.
        self._failed: tuple[PluginInfo, ...] = ()
        self._withdrawn: dict[str, str] = {}

    def _name(self, item: T) -> str:
        raise NotImplementedError

    def _add(self, item: T) -> None:
        name = self._name(item)
        check_name(self.kind, name)
        if name in self._items:
            other = self._items[name][1]
            raise DuplicateNameError(
                f"{self.kind} {name!r} from plugin {self._owner.label()} "
                f"is already registered by plugin {other.label()}"
            )
        self._items[name] = (item, self._owner)

    # -- reading -------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return (item for item, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> T:
        try:
            return self._items[name][0]
        except KeyError:
            raise UsageError(self.unknown(name)) from None

    def owner(self, name: str) -> PluginInfo:
        return self._items[name][1]

    def unknown(self, name: str) -> str:
        """One line: the name is unknown, the closest known one, and which plugins failed."""
        failed = {p.name: p for p in self._failed}
        owner = failed.get(self._withdrawn.get(name, ""))
        if owner is not None:
            return (f"unknown {self.kind} {name!r}: plugin {owner.label()}, which registers "
                    f"it, failed to load ({owner.error}) — see `harness list`")
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        known = ", ".join(sorted(self.names())) or "none registered"
        text = f"unknown {self.kind} {name!r}{hint}; known: {known}"
        if self._failed:
            n = len(self._failed)  # beyond a few, their errors would drown the line
            which = ", ".join(f"{p.label()} ({p.error})" if n <= 3 else p.label()
                              for p in self._failed)
            text += f"; {n} plugin{'s' if n > 1 else ''} failed to load: {which} — see " \
                    "`harness list`"
        return text

    def _note_failures(self, failed: Sequence[PluginInfo]) -> None:
        self._failed = tuple(failed)


@contextmanager
def registering(owner: PluginInfo, registries: Sequence[_Registry[Any]]) -> Iterator[None]:
    """One plugin's registrations, in every registry, as one transaction.

    Names added inside the block are attributed to ``owner``. If the block raises
    anything, every one of them is undone in every registry (a failed plugin
    contributes nothing and holds no name), then the error propagates.
    """
    before = [dict(r._items) for r in registries]
    for registry in registries:
        registry._owner = owner
    try:
        yield
    except BaseException:
        for registry, items in zip(registries, before, strict=True):
            for name in registry._items.keys() - items.keys():
                registry._withdrawn[name] = owner.name
            registry._items = items
        raise
    finally:
        for registry in registries:
            registry._owner = PluginInfo(name="<unknown>")


class ProblemRegistry(_Registry[Problem]):
    """Passed to ``register_models``: ``registry.add(problem)``."""

    kind = "model"

    def _name(self, item: Problem) -> str:
        return item.name

    def add(self, problem: Problem) -> None:
        """Register a :class:`harness.Problem` instance under ``problem.name``."""
        if not isinstance(problem, Problem):
            raise TypeError(f"register_models expects Problem instances, got {problem!r}")
        params = problem.params
        if not isinstance(params, tuple | list) or not all(isinstance(p, Param) for p in params):
            raise TypeError(f"model {problem.name!r}: params must hold harness.Param "
                            f"instances, got {params!r}")
        for param in params:
            check_name(f"model {problem.name!r}: parameter", param.name)
        metrics = problem.metrics
        if not isinstance(metrics, tuple | list):
            raise TypeError(f"model {problem.name!r}: metrics must be a tuple of names, "
                            f"got {metrics!r}")
        for metric in metrics:
            check_field_name(f"model {problem.name!r}: metric", metric)
        for metric, side in dict(problem.metric_better).items():
            if metric not in metrics or side not in ("min", "max"):
                raise TypeError(f"model {problem.name!r}: metric_better maps declared metrics "
                                f"to 'min' or 'max', got {metric!r}: {side!r}")
        for metric, chance in dict(problem.chance_level).items():
            if metric not in metrics or isinstance(chance, bool) \
                    or not isinstance(chance, int | float) or not math.isfinite(chance):
                raise TypeError(f"model {problem.name!r}: chance_level maps declared metrics "
                                f"to finite numbers, got {metric!r}: {chance!r}")
        self._add(problem)


class OptimizerRegistry(_Registry[OptimizerSpec]):
    """Passed to ``register_optimizers``: ``registry.add(spec)`` or ``registry.add_torch(...)``."""

    kind = "optimizer"

    def _name(self, item: OptimizerSpec) -> str:
        return item.name

    def add(self, spec: OptimizerSpec) -> None:
        """Register an :class:`harness.OptimizerSpec`.

        Raises TypeError when the factory is not callable, has no argument for the
        parameters, or does not take one of the defaults (see :func:`check_spec`).
        """
        if not isinstance(spec, OptimizerSpec):
            raise TypeError(f"register_optimizers expects OptimizerSpec, got {spec!r}")
        try:
            check_spec(spec)
        except TypeError:
            if isinstance(spec.name, str):  # its name's message points at the plugin
                self._withdrawn[spec.name] = self._owner.name
            raise
        for key in spec.defaults:
            check_field_name(f"optimizer {spec.name!r}: hyperparameter", key)
        self._add(spec)

    def add_torch(
        self,
        name: str,
        cls: type[Optimizer],
        description: str = "",
        *,
        conformance_skip: Mapping[str, str] | None = None,
        capabilities: Capabilities = PLAIN,
        space: Mapping[str, SearchSpace] | None = None,
        **defaults: Any,
    ) -> None:
        """Register a ``torch.optim.Optimizer`` class under ``name`` with the given defaults
        and :class:`harness.Capabilities` (what its step needs).

        Without a description, the class's path and the first line of its docstring
        serve (``"torch.optim.RAdam: Implements RAdam algorithm."``). Its hyperparameters
        are the named arguments of its ``__init__`` (a ``**kwargs`` there is not read as
        "anything goes"). ``conformance_skip`` maps conformance checks it opts out of to
        the reason, as on :class:`OptimizerSpec`; ``space`` its hyperparameters' search spaces.
        """
        import torch

        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise TypeError(f"optimizer {name!r}: add_torch takes a torch.optim.Optimizer "
                            f"subclass, got {cls!r}; use add(OptimizerSpec(...)) for a factory")
        self.add(OptimizerSpec(name=name, factory=cls, defaults=defaults,
                               description=description or _describe_class(cls),
                               conformance_skip=dict(conformance_skip or {}),
                               capabilities=capabilities, space=dict(space or {})))


def _describe_class(cls: type) -> str:
    """``torch.optim.RAdam: Implements RAdam algorithm.``: where it lives, what it does."""
    import torch

    public = getattr(torch.optim, cls.__name__, None) is cls
    path = f"torch.optim.{cls.__name__}" if public else f"{cls.__module__}.{cls.__qualname__}"
    doc = inspect.cleandoc(cls.__doc__ or "")  # its own docstring, not a base class's
    first = doc.splitlines()[0].strip() if doc else ""
    return f"{path}: {first}" if first else path


class ExecutorRegistry(_Registry[ExecutorSpec]):
    """Passed to ``register_executors``: ``registry.add(ExecutorSpec(...))``."""

    kind = "executor"

    def _name(self, item: ExecutorSpec) -> str:
        return item.name

    def add(self, spec: ExecutorSpec) -> None:
        """Register an :class:`harness.executor.ExecutorSpec`."""
        if not isinstance(spec, ExecutorSpec):
            raise TypeError(f"register_executors expects ExecutorSpec, got {spec!r}")
        self._add(spec)


class ScheduleRegistry(_Registry[ScheduleSpec]):
    """Passed to ``register_schedules``: ``registry.add(ScheduleSpec(...))``."""

    kind = "schedule"

    def _name(self, item: ScheduleSpec) -> str:
        return item.name

    def add(self, spec: ScheduleSpec) -> None:
        """Register a :class:`harness.ScheduleSpec`; TypeError when its multiplier cannot be
        called as ``multiplier(step, steps, **defaults)`` (see :func:`check_schedule`)."""
        if not isinstance(spec, ScheduleSpec):
            raise TypeError(f"register_schedules expects ScheduleSpec, got {spec!r}")
        check_schedule(spec)
        self._add(spec)
