"""The plugin host: builds the pluggy manager, loads entry points one by one.

Environment switches (comma-separated patterns, matched with ``fnmatch`` against
an entry point's name and against its distribution's name):

* ``HARNESS_PLUGINS``: load only matching entry points (empty: load none).
* ``HARNESS_BLOCK_PLUGINS``: never load matching entry points.

A plugin that fails to import, registers an unknown hook, or registers a name
that is taken is recorded with its error and left out; the others keep working.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pluggy

from harness import hookspecs
from harness.registry import ExecutorRegistry, OptimizerRegistry, PluginInfo, ProblemRegistry

ENTRY_POINT_GROUP = "harness"
ENV_LOAD = "HARNESS_PLUGINS"
ENV_BLOCK = "HARNESS_BLOCK_PLUGINS"
HOST_DISTRIBUTION = "harness"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _patterns(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


def _matches(patterns: Iterable[str], ep_name: str, dist: str | None) -> bool:
    names = [ep_name] + ([dist, _normalize(dist)] if dist else [])
    return any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


@dataclass(frozen=True)
class _Found:
    ep: md.EntryPoint
    dist: str | None
    version: str | None


def _entry_points() -> list[_Found]:
    """Every entry point of our group, one per (distribution, name), host's first."""
    seen: set[tuple[str | None, str]] = set()
    found: list[_Found] = []
    for dist in md.distributions():
        dist_name = dist.metadata["Name"] if dist.metadata else None
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            key = (_normalize(dist_name) if dist_name else None, ep.name)
            if key in seen:
                continue  # the same distribution visible twice on sys.path
            seen.add(key)
            found.append(_Found(ep, dist_name, dist.version))
    found.sort(
        key=lambda f: (_normalize(f.dist or "") != HOST_DISTRIBUTION, f.dist or "", f.ep.name)
    )
    return found


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())  # one line


class PluginHost:
    """A pluggy manager with the harness's specs, plus the registries built from it."""

    def __init__(self, *, load_entrypoints: bool = True) -> None:
        self.pm = pluggy.PluginManager("harness")
        self.pm.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._order: list[str] = []
        self._registries: tuple[ProblemRegistry, OptimizerRegistry, ExecutorRegistry] | None = None
        if load_entrypoints:
            self.load_entrypoints()

    # -- discovery ---------------------------------------------------------
    def load_entrypoints(self) -> None:
        only = _patterns(os.environ.get(ENV_LOAD))
        block = _patterns(os.environ.get(ENV_BLOCK)) or []
        for found in _entry_points():
            info = PluginInfo(
                name=found.ep.name,
                distribution=found.dist,
                version=found.version,
                module=found.ep.value,
            )
            if _matches(block, found.ep.name, found.dist):
                self._record(replace(info, status="blocked"))
                continue
            if only is not None and not _matches(only, found.ep.name, found.dist):
                self._record(replace(info, status="not-selected"))
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
            except Exception as exc:
                self._record_error(info, _error_text(exc))
                continue
            self.register(plugin, info)

    def register(self, plugin: Any, info: PluginInfo | str) -> PluginInfo:
        """Register an in-process plugin (a module, class or object with hookimpls)."""
        if isinstance(info, str):
            info = PluginInfo(name=info, module=getattr(plugin, "__name__", None))
        try:
            self.pm.register(plugin, name=info.name)
            try:
                self.pm.check_pending()
            except pluggy.PluginValidationError:
                self.pm.unregister(name=info.name)
                raise
        except (ValueError, pluggy.PluginValidationError) as exc:
            return self._record_error(info, _error_text(exc))
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

    def _record_error(self, info: PluginInfo, error: str, key: str | None = None) -> PluginInfo:
        return self._record(replace(info, status="error", error=error), key)

    # -- registries ----------------------------------------------------------
    def _build(self) -> tuple[ProblemRegistry, OptimizerRegistry, ExecutorRegistry]:
        problems, optimizers, executors = ProblemRegistry(), OptimizerRegistry(), ExecutorRegistry()
        hooks: tuple[tuple[str, Any], ...] = (
            ("register_models", problems),
            ("register_optimizers", optimizers),
            ("register_executors", executors),
        )
        for hook_name, registry in hooks:
            impls = {i.plugin_name: i for i in getattr(self.pm.hook, hook_name).get_hookimpls()}
            for name in self._order:
                info = self._infos[name]
                impl = impls.get(name)
                if impl is None or info.status != "loaded":
                    continue
                try:
                    registry._transaction(info, impl.function)
                except Exception as exc:
                    self._infos[name] = replace(
                        info, status="error", error=f"{hook_name}: {_error_text(exc)}"
                    )
        return problems, optimizers, executors

    def _ensure(self) -> tuple[ProblemRegistry, OptimizerRegistry, ExecutorRegistry]:
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
        out: dict[str, Any] = {}
        for impl in self.pm.hook.manifest_metadata.get_hookimpls():
            try:
                value = impl.function()
            except Exception as exc:
                value = {"error": _error_text(exc)}
            if value is not None:
                out[impl.plugin_name] = value
        return out

    def call_each(self, hook_name: str, **kwargs: Any) -> list[HookCall]:
        """Call one hook on every loaded plugin, one at a time, in load order.

        Each plugin's return value or error is kept separately, so one plugin that
        raises never hides the others' results (the report's figures use this).
        """
        self._ensure()
        impls = {i.plugin_name: i for i in getattr(self.pm.hook, hook_name).get_hookimpls()}
        names = [n for n in self._order if n in impls and self._infos[n].status == "loaded"]
        names += [n for n in impls if n not in names and n not in self._infos]
        calls: list[HookCall] = []
        for name in names:
            impl = impls[name]
            try:
                value = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                calls.append(HookCall(name, None, _error_text(exc)))
                continue
            calls.append(HookCall(name, value, None))
        return calls


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


def reset_host() -> None:
    """Forget the process-wide host (tests, or after changing the environment switches)."""
    global _HOST
    _HOST = None
