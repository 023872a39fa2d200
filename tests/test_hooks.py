"""Hooks that no other test file covers (``manifest_metadata``, ``register_problems`` and
its alias ``register_models``), the implementation options the host refuses, and tracing."""

from __future__ import annotations

from typing import Any

import pytest

from harness import hookimpl
from harness.plugins import PluginHost
from harness.problem import Problem
from harness.registry import ProblemRegistry


class GpuInfo:
    @hookimpl
    def manifest_metadata(self) -> dict[str, Any]:
        return {"driver": "550.54", "mig": False}


class Quiet:
    @hookimpl
    def manifest_metadata(self) -> None:
        return None


class Raises:
    @hookimpl
    def manifest_metadata(self) -> dict[str, Any]:
        raise RuntimeError("no driver")


def test_manifest_metadata_is_kept_per_plugin_and_failures_stay_apart(
    host: PluginHost, register_plugin: Any
) -> None:
    register_plugin(GpuInfo(), "gpu-info")
    register_plugin(Quiet(), "quiet")
    register_plugin(Raises(), "raises")
    metadata = host.manifest_metadata()
    assert metadata["gpu-info"] == {"driver": "550.54", "mig": False}
    assert "quiet" not in metadata  # None contributes nothing
    assert metadata["raises"] == {"error": "RuntimeError: no driver"}


# -- register_problems and its alias ------------------------------------------------------
class _Line(Problem):
    description = "a line"

    def __init__(self, name: str) -> None:
        self.name = name

    def build(self, ctx: Any) -> Any:  # never built here
        raise NotImplementedError


class NewSpelling:
    @hookimpl
    def register_problems(self, registry: ProblemRegistry) -> None:
        registry.add(_Line("line-new"))


class OldSpelling:
    @hookimpl
    def register_models(self, registry: ProblemRegistry) -> None:
        registry.add(_Line("line-old"))


def test_register_problems_and_its_alias_register_models_fill_one_registry() -> None:
    host = PluginHost(load_entrypoints=False)
    host.register(NewSpelling(), "new")
    host.register(OldSpelling(), "old")
    assert host.problems.names() == ["line-new", "line-old"]
    assert host.problems.owner("line-old").name == "old"


# -- implementation options the host cannot honour ------------------------------------------
class Wrapper:
    @hookimpl(hookwrapper=True)
    def register_optimizers(self, registry: Any) -> Any:
        yield


class First:
    @hookimpl(tryfirst=True)
    def register_problems(self, registry: ProblemRegistry) -> None:
        registry.add(_Line("first"))


@pytest.mark.parametrize(("plugin", "option"), [(Wrapper(), "hookwrapper"), (First(), "tryfirst")])
def test_an_option_the_host_cannot_honour_is_a_load_error_naming_the_plugin(
    plugin: object, option: str
) -> None:
    host = PluginHost(load_entrypoints=False)
    info = host.register(plugin, "opinionated")
    assert info.status == "error"
    assert f"hookimpl option {option}=True is not supported" in (info.error or "")
    assert [p.name for p in host.errors()] == ["opinionated"]
    assert "first" not in host.problems  # it contributes nothing


def test_every_hook_call_is_traced_on_stderr_when_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_TRACE_HOOKS", "1")
    host = PluginHost(load_entrypoints=False)
    host.register(NewSpelling(), "new")
    host.register(Raises(), "raises")
    assert host.problems.names() == ["line-new"]
    host.manifest_metadata()
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("harness: hook register_problems(registry=")
               and line.endswith("-> plugin new") for line in err), err
    assert "harness: hook manifest_metadata() -> plugin raises" in err
    assert "harness: hook manifest_metadata raised RuntimeError: no driver" in err


def test_no_trace_without_the_switch(capsys: pytest.CaptureFixture[str]) -> None:
    host = PluginHost(load_entrypoints=False)
    host.register(NewSpelling(), "new")
    assert host.problems.names() == ["line-new"]
    assert capsys.readouterr().err == ""
