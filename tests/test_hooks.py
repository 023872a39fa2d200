"""Hooks that no other test file covers: ``manifest_metadata``."""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.plugins import PluginHost


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
