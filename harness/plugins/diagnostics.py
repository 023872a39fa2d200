"""What the plugin host tells about plugins: a failure as one line with where it happened
(``(at FILE:LINE)``) and its full traceback, and the trace of hook calls that
``HARNESS_TRACE_HOOKS`` turns on."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

#: Modules whose frames are never "where a plugin failed": the host, the registries and
#: contracts that raise on a plugin's behalf, pluggy, and the import machinery.
_MACHINERY = ("harness", "pluggy", "importlib", "_frozen_importlib", "runpy")


def load_error(exc: BaseException, module: str | None) -> tuple[str, str]:
    """A plugin's load error: one line that ends with where it failed (``(at FILE:LINE)``),
    and the full traceback."""
    text = error_text(exc)
    where = _where(exc, module)
    if where and where not in text:
        text = f"{text} (at {where})"
    return text, "".join(traceback.format_exception(exc))


def _where(exc: BaseException, module: str | None) -> str | None:
    """``file:line`` of the failing frame: the innermost in the plugin's own package (its
    entry point's top-level module), else the innermost outside :data:`_MACHINERY`; a
    SyntaxError's own file and line."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f"{_shown(exc.filename)}:{exc.lineno}"
    top = (module or "").split(":")[0].split(".")[0]
    frames: list[tuple[str, str, int]] = []
    tb = exc.__traceback__
    while tb is not None:
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        frames.append((name, tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    own = [f for f in frames if top and (f[0] == top or f[0].startswith(top + "."))]
    outside = [f for f in frames if f[0].split(".")[0] not in _MACHINERY
               and not f[1].startswith("<frozen")]
    chosen = own or outside or frames
    return f"{_shown(chosen[-1][1])}:{chosen[-1][2]}" if chosen else None


def _shown(filename: str) -> str:
    """A file's path relative to the working directory where it lies under it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith("..") else relative


def error_text(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        text = f"SystemExit: the plugin called sys.exit({exc.code!r})"
    else:
        text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())  # one line


def trace_hook_calls(pm: pluggy.PluginManager) -> None:
    """Print each hook call on stderr: ``HARNESS_TRACE_HOOKS``, as datasette's
    ``DATASETTE_TRACE_PLUGINS``."""

    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        args = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
        plugins = ", ".join(i.plugin_name for i in impls)
        print(f"harness: hook {hook_name}({args}) -> plugin {plugins}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: Sequence[Any],
              kwargs: Mapping[str, Any]) -> None:
        exc = outcome.exception
        told = f"raised {error_text(exc)}" if exc is not None else \
            f"returned {_short(outcome.get_result())}"
        print(f"harness: hook {hook_name} {told}", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def _short(value: Any, width: int = 80) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."
