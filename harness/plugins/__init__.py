"""Finding and loading plugins: the pluggy host and the registries it fills.

:mod:`harness.plugins.host` builds the plugin manager, loads each entry point of the
``harness`` group on its own (a failure is recorded against that plugin and never
stops the others) and calls the registration hooks.
"""

from __future__ import annotations

from harness.plugins.host import (
    ENTRY_POINT_GROUP,
    ENV_BLOCK,
    ENV_LOAD,
    HOST_DISTRIBUTION,
    HookCall,
    PluginHost,
    get_host,
    reset_host,
    use_files,
)

__all__ = ["ENTRY_POINT_GROUP", "ENV_BLOCK", "ENV_LOAD", "HOST_DISTRIBUTION", "HookCall",
           "PluginHost", "get_host", "reset_host",
           "use_files"]
