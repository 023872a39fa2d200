"""What a plugin's cells record about its code beyond its version number: the hash of its
source when it is installed editable or from a local path, and the versions of the
distributions it declares it wraps (``harness_wraps``)."""

from __future__ import annotations

import importlib.metadata as md
import json
import sys
from pathlib import Path
from typing import Any


def installed_locally(dist: md.Distribution) -> bool:
    """Whether ``dist`` was installed editable or from a local path (PEP 610)."""
    try:
        text = dist.read_text("direct_url.json")
        return text is not None and str(json.loads(text).get("url", "")).startswith("file:")
    except (OSError, ValueError, AttributeError):
        return False


def module_source(module_name: str) -> Path | None:
    """The source of an entry point's top-level package (its folder) or module (its file)."""
    top = sys.modules.get(module_name.split(".")[0])
    file = getattr(top, "__file__", None)
    if not file:
        return None
    path = Path(file)
    return path.parent if path.name == "__init__.py" else path


def wrapped_versions(plugin: Any) -> tuple[tuple[str, str], ...]:
    """The versions of the distributions a plugin declares it wraps (its module's
    ``harness_wraps``, a list of distribution names): part of its cells' content keys."""
    names = getattr(plugin, "harness_wraps", None)
    if not isinstance(names, list | tuple):
        return ()
    out = []
    for name in names:
        try:
            version = md.version(str(name))
        except md.PackageNotFoundError:
            version = "not installed"
        out.append((str(name), version))
    return tuple(sorted(out))
