"""Plugins from files: ``--plugin PATH`` and a grid file's ``plugins = [...]``.

A plugin file is a ``.py`` file or a package directory (one with ``__init__.py``) holding
``@hookimpl`` functions, as an installed plugin's module does; no ``pyproject.toml``, no
entry point, no ``pip install``. The host imports each under a name of its own
(``harness_file_<stem>``) and registers it as the plugin ``<stem>``, with the same
isolation as an entry point: one that fails to import is recorded with its error.

Worker processes get the files through :data:`harness.executor.PLUGIN_FILES_ENV` (absolute
paths joined by ``os.pathsep``), which the host reads when it is built, and executors through
:attr:`harness.executor.ExecutorContext.plugin_files`; executors whose workers may be on other
machines get each file's source (:class:`harness.executor.PluginSource`, read once when the
host loads it: the bytes its manifest hash is of) through
:attr:`~harness.executor.ExecutorContext.plugin_sources`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

from harness.errors import UsageError
from harness.executor import PLUGIN_FILES_ENV, PluginSource

#: The prefix of the module name a plugin file is imported under.
MODULE_PREFIX = "harness_file_"


def resolve(paths: Iterable[str], where: str = "--plugin", base: Path | None = None,
            ) -> list[Path]:
    """Absolute paths of plugin files, checked; relative ones are taken from ``base``
    (the working directory by default). A path that is neither a ``.py`` file nor a package
    directory is a one-line usage error naming ``where`` it came from."""
    out: list[Path] = []
    for text in paths:
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{where}: expected the path of a .py file or a package directory")
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        path = Path(os.path.abspath(path))
        if not path.exists():
            raise UsageError(f"{where} {text!r}: no such file or directory")
        if path.is_dir():
            if not (path / "__init__.py").is_file():
                raise UsageError(f"{where} {text!r}: a plugin directory must be a package "
                                 "(hold an __init__.py)")
        elif path.suffix != ".py":
            raise UsageError(f"{where} {text!r}: expected a .py file or a package directory")
        if path not in out:
            out.append(path)
    return out


def from_env() -> list[Path]:
    """The plugin files :data:`PLUGIN_FILES_ENV` names (those that exist are kept as given;
    a missing one is loaded, and fails, like any other)."""
    value = os.environ.get(PLUGIN_FILES_ENV, "")
    return [Path(p) for p in value.split(os.pathsep) if p.strip()]


def use(paths: Sequence[Path]) -> None:
    """Add ``paths`` to :data:`PLUGIN_FILES_ENV`, for this process's host and for every
    process it starts (the caller builds the host again: :func:`harness.plugins.use_files`)."""
    known = from_env()
    merged = known + [p for p in paths if p not in known]
    if merged:
        os.environ[PLUGIN_FILES_ENV] = os.pathsep.join(str(p) for p in merged)


def plugin_name(path: Path) -> str:
    """The plugin's name: the file's stem or the package directory's name."""
    return path.stem if path.suffix == ".py" else path.name


def read_source(path: Path) -> PluginSource | None:
    """The plugin's source, read once (what is shipped to Dask workers and hashed for the
    manifest); None if unreadable."""
    try:
        return PluginSource.read(path)
    except OSError:
        return None


def source_hash(path: Path) -> str | None:
    """``sha256:<hex>`` of the plugin's source: the file, or each ``.py`` file of the package
    (its path in the package and its bytes, in a stable order); None if unreadable."""
    source = read_source(path)
    return source.sha256 if source is not None else None


def module_name(path: Path) -> str:
    """A module name of the plugin's own, told apart from another file of the same stem."""
    stem = re.sub(r"\W", "_", plugin_name(path))
    tag = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    return f"{MODULE_PREFIX}{stem}_{tag}"


def import_file(path: Path) -> ModuleType:
    """Import a plugin file or package under :func:`module_name`; its errors propagate (and
    nothing of it stays in ``sys.modules``)."""
    name = module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)])
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        raise
    return module
