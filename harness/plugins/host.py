"""The plugin host: builds the pluggy manager, loads entry points one by one.

Environment switches (comma-separated patterns, matched with ``fnmatch`` against
an entry point's name and against its distribution's name; for the distribution,
pattern and name are both normalised as pip does, so ``harness_foo`` matches
``harness-foo``):

* ``HARNESS_PLUGINS``: load only matching entry points (empty: load none).
* ``HARNESS_BLOCK_PLUGINS``: never load matching entry points.
* ``HARNESS_PLUGIN_FILES``: local plugin files to load after the entry points
  (:mod:`harness.plugins.files`; ``--plugin PATH`` sets it).
* ``HARNESS_TRACE_HOOKS``: set (to anything but ``0`` or empty), every hook call is
  printed on stderr: the hook, the plugin, its arguments, and what it returned or raised.

A plugin that fails to import (``sys.exit`` included), registers an unknown hook,
raises in a registration hook or registers a name that is taken is recorded with
its error and contributes nothing: whatever its hooks registered is undone, in
every registry. The others keep working.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pluggy

from harness import hookspecs
from harness.executor import PluginSource
from harness.plugins import files, provenance
from harness.plugins.diagnostics import error_text, load_error, trace_hook_calls
from harness.registry import (
    ExecutorRegistry,
    OptimizerRegistry,
    PluginInfo,
    ProblemRegistry,
    ScheduleRegistry,
    registering,
)

_Registries = tuple[ProblemRegistry, OptimizerRegistry, ExecutorRegistry, ScheduleRegistry]

ENTRY_POINT_GROUP = "harness"
ENV_LOAD = "HARNESS_PLUGINS"
ENV_BLOCK = "HARNESS_BLOCK_PLUGINS"
ENV_TRACE = "HARNESS_TRACE_HOOKS"
HOST_DISTRIBUTION = "harness"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _patterns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


def _matches(patterns: Iterable[str], ep_name: str, dist: str | None) -> bool:
    """Does a pattern match the entry point's name, or its distribution's (normalised) name?"""
    for pattern in patterns:
        if fnmatch.fnmatchcase(ep_name, pattern):
            return True
        if dist and (fnmatch.fnmatchcase(dist, pattern)
                     or fnmatch.fnmatchcase(_normalize(dist), _normalize(pattern))):
            return True
    return False


@dataclass(frozen=True)
class _Found:
    ep: md.EntryPoint
    dist: str | None
    version: str | None
    #: Installed editable or from a local path (``direct_url.json`` names a ``file:`` URL):
    #: its version number need not change when its code does.
    local: bool = False


def _entry_points() -> list[_Found]:
    """Every entry point of our group, one per (distribution, name), host's first."""
    seen: set[tuple[str | None, str]] = set()
    found: list[_Found] = []
    for dist in md.distributions():
        ours = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
        # metadata is parsed (slow) only for the few distributions that have a plugin
        dist_name = (dist.metadata["Name"] if dist.metadata else None) if ours else None
        for ep in ours:
            key = (_normalize(dist_name) if dist_name else None, ep.name)
            if key in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add(key)
            found.append(_Found(ep, dist_name, dist.version, provenance.installed_locally(dist)))
    found.sort(
        key=lambda f: (_normalize(f.dist or "") != HOST_DISTRIBUTION, f.dist or "", f.ep.name)
    )
    return found


def _left_out(found: _Found) -> str | None:
    """``blocked`` (``HARNESS_BLOCK_PLUGINS``), ``not-selected`` (``HARNESS_PLUGINS``) or None."""
    if _matches(_patterns(os.environ.get(ENV_BLOCK)) or [], found.ep.name, found.dist):
        return "blocked"
    only = _patterns(os.environ.get(ENV_LOAD))
    if only is not None and not _matches(only, found.ep.name, found.dist):
        return "not-selected"
    return None


def installed_modules() -> list[str]:
    """The modules of the installed plugins a host would load here (:func:`_left_out`),
    imported ahead of time by :mod:`harness.run.preload`."""
    return list(dict.fromkeys(found.ep.module for found in _entry_points()
                              if _left_out(found) is None))


#: What a plugin may raise without taking the harness down: any error, and SystemExit
#: (a plugin, or a dependency of one, that calls sys.exit). Never KeyboardInterrupt.
PLUGIN_FAILURES = (Exception, SystemExit)

#: The registration hooks, in the order each plugin's are called.
REGISTRATION_HOOKS = ("register_problems", "register_models", "register_optimizers",
                      "register_executors", "register_schedules")
#: The registry each registration hook fills (an index into the host's registries).
_REGISTRY_OF = {"register_problems": 0, "register_models": 0, "register_optimizers": 1,
                "register_executors": 2, "register_schedules": 3}
#: Hook implementation options that need pluggy's chain of every plugin's calls, which the
#: host does not make (it calls one plugin at a time, see :mod:`harness.hookspecs`).
UNSUPPORTED_OPTIONS = ("hookwrapper", "wrapper", "tryfirst", "trylast")


class PluginHost:
    """A pluggy manager with the harness's specs, plus the registries built from it."""

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self.pm = pluggy.PluginManager("harness")
        self.pm.add_hookspecs(hookspecs)
        if os.environ.get(ENV_TRACE, "") not in ("", "0"):
            trace_hook_calls(self.pm)
        self._infos: dict[str, PluginInfo] = {}
        self._order: list[str] = []
        self._sources: dict[str, PluginSource] = {}
        self._registries: _Registries | None = None
        if load_entrypoints:
            self.load_entrypoints()
            self.load_files(files.from_env())

    # -- discovery ---------------------------------------------------------
    def load_entrypoints(self) -> None:
        for found in _entry_points():
            info = PluginInfo(
                name=found.ep.name,
                distribution=found.dist,
                version=found.version,
                module=found.ep.value,
            )
            left_out = _left_out(found)
            if left_out is not None:
                self._record(replace(info, status=left_out))
                continue
            if found.ep.name in self._infos and self._infos[found.ep.name].status == "loaded":
                other = self._infos[found.ep.name]
                self._record_error(
                    info,
                    f"plugin name {found.ep.name!r} is already used by {other.label()}",
                    key=f"{found.ep.name} ({found.dist})",
                )
                continue
            try:
                plugin = found.ep.load()
            except PLUGIN_FAILURES as exc:
                self._record_error(info, *load_error(exc, found.ep.value))
                continue
            source = provenance.module_source(found.ep.module) \
                if found.local and _normalize(found.dist or "") != HOST_DISTRIBUTION else None
            if source is not None:  # its code may change under the same version number
                info = replace(info, sha256=files.source_hash(source))
            self.register(plugin, info)

    def load_files(self, paths: Sequence[Path]) -> None:
        """Load local plugin files (:mod:`harness.plugins.files`), each on its own, as an
        entry point is: blocked by ``HARNESS_BLOCK_PLUGINS``, recorded with its error when
        it fails. Naming a file is selecting it, so ``HARNESS_PLUGINS`` does not apply."""
        block = _patterns(os.environ.get(ENV_BLOCK)) or []
        for path in paths:
            name = files.plugin_name(path)
            source = files.read_source(path)
            info = PluginInfo(name=name, module=files.module_name(path), source=str(path),
                              sha256=source.sha256 if source is not None else None)
            if any(other.source == info.source for other in self._infos.values()):
                continue  # the same file named twice
            if source is not None:
                self._sources[str(path)] = source
            if _matches(block, name, None):
                self._record(replace(info, status="blocked"), key=f"{name} ({path})")
                continue
            if name in self._infos and self._infos[name].status == "loaded":
                self._record_error(info, f"plugin name {name!r} is already used by "
                                         f"{self._infos[name].label()}", key=f"{name} ({path})")
                continue
            try:
                plugin = files.import_file(path)
            except PLUGIN_FAILURES as exc:
                self._record_error(info, *load_error(exc, info.module),
                                   key=f"{name} ({path})" if name in self._infos else None)
                continue
            self.register(plugin, info)

    def plugin_files(self) -> tuple[str, ...]:
        """The local plugin files this host was given (loaded or not), absolute paths."""
        return tuple(dict.fromkeys(i.source for i in self._infos.values() if i.source))

    def plugin_sources(self) -> tuple[PluginSource, ...]:
        """The sources of :meth:`plugin_files` (those that could be read), as read when
        this host loaded them: the bytes each one's ``sha256`` is of."""
        return tuple(self._sources[p] for p in self.plugin_files() if p in self._sources)

    def register(self, plugin: Any, info: PluginInfo | str) -> PluginInfo:
        """Register an in-process plugin (a module, class or object with hookimpls)."""
        if isinstance(info, str):
            info = PluginInfo(name=info, module=getattr(plugin, "__name__", None))
        info = replace(info, wraps=provenance.wrapped_versions(plugin))
        try:
            self.pm.register(plugin, name=info.name)
            try:
                self.pm.check_pending()
                _check_options(self.pm, plugin)
            except pluggy.PluginValidationError:
                self.pm.unregister(name=info.name)
                raise
        except (ValueError, pluggy.PluginValidationError) as exc:
            return self._record_error(info, error_text(exc))
        self._record(info)
        return info

    def unregister(self, name: str) -> None:
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self._infos.pop(name, None)
        if name in self._order:
            self._order.remove(name)
        self._registries = None

    def _record(self, info: PluginInfo, key: str | None = None) -> PluginInfo:
        key = key or info.name
        if key not in self._infos:
            self._order.append(key)
        self._infos[key] = info
        self._registries = None
        return info

    def _record_error(self, info: PluginInfo, error: str, trace: str | None = None,
                      key: str | None = None) -> PluginInfo:
        return self._record(replace(info, status="error", error=error, traceback=trace), key)

    # -- registries ----------------------------------------------------------
    def _build(self) -> _Registries:
        """Call each loaded plugin's registration hooks, one plugin at a time.

        A plugin's hooks are one transaction across the three registries: if any of
        them raises, everything the plugin registered is undone and it is recorded as
        failed, before the next plugin registers (so it holds no name another needs).
        """
        registries = (ProblemRegistry(), OptimizerRegistry(), ExecutorRegistry(),
                      ScheduleRegistry())
        implementers = self._implementers(REGISTRATION_HOOKS)
        for key in self._order:
            info = self._infos[key]
            if info.status != "loaded":
                continue
            hooks = [hook for hook in REGISTRATION_HOOKS if key in implementers[hook]]
            failing = ""
            try:
                with registering(info, registries):
                    for hook in hooks:
                        failing = hook
                        self.call_one(hook, key, registry=registries[_REGISTRY_OF[hook]])
            except PLUGIN_FAILURES as exc:
                text, trace = load_error(exc, info.module)
                self._infos[key] = replace(info, status="error", error=f"{failing}: {text}",
                                           traceback=trace)
        failed = [self._infos[k] for k in self._order if self._infos[k].status == "error"]
        for registry in registries:
            registry._note_failures(failed)
        return registries

    def _implementers(self, hooks: Sequence[str]) -> dict[str, set[str]]:
        return {hook: {i.plugin_name for i in getattr(self.pm.hook, hook).get_hookimpls()}
                for hook in hooks}

    def _ensure(self) -> _Registries:
        if self._registries is None:
            self._registries = self._build()
        return self._registries

    @property
    def problems(self) -> ProblemRegistry:
        return self._ensure()[0]

    @property
    def optimizers(self) -> OptimizerRegistry:
        return self._ensure()[1]

    @property
    def executors(self) -> ExecutorRegistry:
        return self._ensure()[2]

    @property
    def schedules(self) -> ScheduleRegistry:
        return self._ensure()[3]

    @property
    def plugins(self) -> list[PluginInfo]:
        self._ensure()
        return [self._infos[k] for k in self._order]

    def errors(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.status == "error"]

    def distribution_versions(self) -> dict[str, str]:
        """Distribution name -> version for every plugin that loaded."""
        return {
            p.distribution: p.version or ""
            for p in self.plugins
            if p.distribution and p.status == "loaded"
        }

    def manifest_metadata(self) -> dict[str, Any]:
        """Each loaded plugin's ``manifest_metadata()``, keyed by plugin name."""
        self._ensure()
        out: dict[str, Any] = {}
        for impl in self.pm.hook.manifest_metadata.get_hookimpls():
            own = self._infos.get(impl.plugin_name)
            if own is not None and own.status != "loaded":
                continue  # a failed plugin contributes nothing
            try:
                value = self.call_one("manifest_metadata", impl.plugin_name)
            except PLUGIN_FAILURES as exc:
                value = {"error": error_text(exc)}
            if value is not None:
                out[impl.plugin_name] = value
        return out

    def call_one(self, hook_name: str, plugin_name: str, **kwargs: Any) -> Any:
        """Call one plugin's implementation of a hook through pluggy's hook caller (so
        tracing and call monitoring see it); its return value, or None. Its errors
        propagate, for the caller to record against that plugin."""
        others = [p for n, p in self.pm.list_name_plugin() if n != plugin_name]
        caller = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        results = caller(**kwargs)
        return results[0] if results else None

    def call_each(self, hook_name: str, **kwargs: Any) -> list[HookCall]:
        """Call one hook on every loaded plugin, one at a time, in load order.

        Each plugin's return value or error is kept separately, so one plugin that
        raises never hides the others' results (the report's figures use this). A plugin
        whose registration failed contributes nothing, so the registries are built first
        when one of the hook's plugins registers something (and only then: a report whose
        figure plugins register nothing never runs the optimizers' registration, which
        imports torch).
        """
        impls = {i.plugin_name: i for i in getattr(self.pm.hook, hook_name).get_hookimpls()}
        if set(impls) & set().union(*self._implementers(REGISTRATION_HOOKS).values()):
            self._ensure()
        names = [n for n in self._order if n in impls and self._infos[n].status == "loaded"]
        names += [n for n in impls if n not in names and n not in self._infos]
        calls: list[HookCall] = []
        for name in names:
            try:
                value = self.call_one(hook_name, name, **kwargs)
            except PLUGIN_FAILURES as exc:
                calls.append(HookCall(name, None, error_text(exc)))
                continue
            calls.append(HookCall(name, value, None))
        return calls


def _check_options(pm: pluggy.PluginManager, plugin: Any) -> None:
    """Refuse implementation options the host cannot honour, naming the hook and option."""
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            used = [o for o in UNSUPPORTED_OPTIONS if getattr(impl, o, False)]
            if used:
                raise pluggy.PluginValidationError(
                    plugin, f"{caller.name}: hookimpl option {used[0]}=True is not supported "
                            "(harness calls each plugin's hooks on their own, so there is no "
                            "chain of calls to wrap or to go first in)")


@dataclass(frozen=True)
class HookCall:
    """One plugin's answer to a hook called by :meth:`PluginHost.call_each`."""

    plugin: str
    value: Any
    error: str | None


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, built on first use."""
    global _HOST
    if _HOST is None:
        _HOST = PluginHost()
    return _HOST


def use_files(paths: Sequence[Path]) -> None:
    """Load these local plugin files too, here and in every process started from now on
    (:data:`harness.executor.PLUGIN_FILES_ENV`); the process-wide host is built again."""
    if paths:
        files.use(paths)
        reset_host()


def reset_host() -> None:
    """Forget the process-wide host (tests, or after changing the environment switches)."""
    global _HOST
    _HOST = None
