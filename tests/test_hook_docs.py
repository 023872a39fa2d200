"""Meta-tests, as datasette keeps them: every hook is documented and every hook is tested.

A hook added to ``harness/hookspecs.py`` fails here until ``docs/plugins.md`` has a
level-2 heading ``## name(arg1, arg2)`` matching its signature and some test file
under ``tests/`` uses its name.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import hookspecs

TESTS = Path(__file__).parent
DOCS = TESTS.parent / "docs" / "plugins.md"
#: A hook heading: "## name(args)", optionally in backticks.
HEADING = re.compile(r"^## `?([a-z_][a-z0-9_]*)\(([^)]*)\)`?\s*$")


def hook_specs() -> dict[str, Callable[..., Any]]:
    return {name: fn for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "harness_spec")}


def signature(fn: Callable[..., Any]) -> str:
    return f"{fn.__name__}({', '.join(inspect.signature(fn).parameters)})"


def documented() -> dict[str, str]:
    """Hook name -> the heading's text, for every hook heading in the plugin docs."""
    found: dict[str, str] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = HEADING.match(line)
        if m:
            found[m.group(1)] = f"{m.group(1)}({m.group(2).strip()})"
    return found


HOOKS = sorted(hook_specs())


def test_there_are_hooks_to_check() -> None:
    assert {"register_models", "register_optimizers", "manifest_metadata"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_heading_matching_its_signature(name: str) -> None:
    expected = signature(hook_specs()[name])
    headings = documented()
    assert name in headings, f"docs/plugins.md has no heading for the hook: add '## {expected}'"
    assert headings[name] == expected, (
        f"docs/plugins.md documents '{headings[name]}', the hook is '{expected}'")


def test_every_documented_hook_exists() -> None:
    stale = sorted(set(documented()) - set(HOOKS))
    assert not stale, f"docs/plugins.md documents hooks that hookspecs.py lacks: {stale}"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name: str) -> None:
    word = re.compile(rf"\b{name}\b")
    users = [p.name for p in sorted(TESTS.rglob("test_*.py"))
             if p.resolve() != Path(__file__).resolve() and word.search(p.read_text("utf-8"))]
    assert users, f"no test under tests/ uses the hook {name!r}"
