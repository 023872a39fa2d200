"""The house keeps its shape (docs/architecture.md): the import contracts hold, the read side
starts without torch, and modules and functions stay small enough to read."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BASELINE = ROOT / "benchmarks" / "baseline"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: Functions allowed past the limit, each with the reason the code gives.
LONG_FUNCTIONS = {
    "harness/cli/parser.py:build_parser": "a declarative table of add_argument calls",
}


def sources() -> list[Path]:
    return sorted([*(ROOT / "harness").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])


def test_every_module_is_at_most_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in sources()
            if (n := p.read_text("utf-8").count("\n")) > MAX_MODULE_LINES}
    assert long == {}


def test_every_function_is_at_most_80_lines_but_the_declared_tables() -> None:
    long = {}
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert set(long) == set(LONG_FUNCTIONS), long
    parser = (ROOT / "harness/cli/parser.py").read_text("utf-8")
    assert "declarative table" in parser  # the exception is said so in the code


@pytest.mark.skipif(shutil.which("lint-imports") is None and not os.environ.get("CI"),
                    reason="import-linter is not installed (pip install -e '.[dev]')")
def test_the_import_contracts_hold() -> None:
    done = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert ", 0 broken." in done.stdout


READ_COMMANDS = [
    ["show", str(BASELINE)],
    ["compare", str(BASELINE), str(BASELINE)],
    ["export", str(BASELINE), "--format", "pytest-benchmark"],
    ["--help"],
]


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=lambda a: a[0])
def test_the_read_side_runs_without_torch_or_the_plugins(argv: list[str]) -> None:
    """What import-linter checks statically, checked at run time as a user runs it."""
    code = ("import json, sys\nfrom harness.cli import main\n"
            f"try:\n    code = main({argv!r})\n"
            "finally:\n"
            "    loaded = [m for m in ('torch', 'harness.plugins', 'harness.train', "
            "'harness.run') if m in sys.modules]\n"
            "    print('LOADED=' + json.dumps(loaded), file=sys.stderr)\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    assert json.loads(line.removeprefix("LOADED=")) == []
