"""The house keeps its shape (docs/architecture.md): the import contracts hold, the read side
starts without torch, the plugins load without it, and modules and functions stay small
enough to read."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

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


def _loaded_by(argv: list[str], watched: tuple[str, ...]) -> list[str]:
    """Run ``harness ARGV`` in a fresh interpreter: which of ``watched`` it imported."""
    code = ("import json, sys\nfrom harness.cli import main\n"
            f"try:\n    code = main({argv!r})\n"
            "finally:\n"
            f"    loaded = [m for m in {watched!r} if m in sys.modules]\n"
            "    print('LOADED=' + json.dumps(loaded), file=sys.stderr)\n"
            "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED="))
    return list(json.loads(line.removeprefix("LOADED=")))


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=lambda a: a[0])
def test_the_read_side_runs_without_torch_or_the_plugins(argv: list[str]) -> None:
    """What import-linter checks statically, checked at run time as a user runs it."""
    assert _loaded_by(argv, ("torch", "harness.plugins", "harness.train", "harness.run")) == []


def test_a_report_of_the_built_in_problems_imports_no_torch(tmp_path: Path) -> None:
    """The report loads the plugins for their figures; the built-in figure plugin registers
    nothing and the run recorded its problems' descriptions, so no registration runs (the
    optimizers' would import torch). Nor does it import seaborn or scipy.stats (a fifth of a
    report's time): the theme is seaborn's as data, the statistics use scipy.special."""
    from harness.cli import main

    run = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "10",
                 "--workers", "0", "--quiet", "--out", str(run)]) == 0
    argv = ["report", str(run), "--workers", "1"]
    assert _loaded_by(argv, ("torch", "torchvision", "gymnasium", "harness.train", "seaborn",
                             "scipy.stats")) == []
    assert (run / "report" / "index.html").is_file()
    assert any((run / "report").glob("fig-*-regression-builtin-figures-*.png"))


#: Loads the plugin host in a fresh interpreter and says what was imported: with the
#: plugins loaded (their modules imported, their hooks not called yet), then with the
#: registries built. For a heavy module imported at load, the harness frames that did it.
LOAD_HOST = """
import json, sys, traceback
HEAVY = ("torch", "torchvision", "gymnasium")
who = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in who:
            who[name] = [f.strip() for f in traceback.format_stack() if "harness" in f][-3:]
sys.meta_path.insert(0, Spy())
from harness.plugins.host import PluginHost
host = PluginHost()
loaded = {m: who.get(m) for m in HEAVY if m in sys.modules}
problems, optimizers = host.problems.names(), host.optimizers.names()
print(json.dumps({"at_load": loaded, "plugins": {p.name: p.status for p in host.plugins},
                  "built": [m for m in HEAVY if m in sys.modules],
                  "problems": problems, "optimizers": optimizers}))
"""


@pytest.fixture(scope="module")
def host_load() -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", LOAD_HOST], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_loading_the_plugins_imports_no_torch_torchvision_or_gymnasium(
        host_load: dict[str, Any]) -> None:
    """``harness list`` and ``harness report`` load every plugin: a built-in problem
    module says what its problems are and imports its networks (harness_builtins.nets,
    torch) only when a cell is built; the optimizers import torch when registered."""
    assert host_load["at_load"] == {}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    builtins = pyproject["project"]["entry-points"]["harness"]
    assert {name: host_load["plugins"].get(name) for name in builtins} == \
        dict.fromkeys(builtins, "loaded")


def test_the_registries_build_after_a_torch_free_load(host_load: dict[str, Any]) -> None:
    """Building the registries calls the hooks: torch is imported then, gymnasium only when
    a DQN cell is built."""
    assert host_load["built"] == ["torch"]
    assert {"regression", "cnn", "rnn-regression", "dropout", "batchnorm", "gan",
            "dqn"} <= set(host_load["problems"])
    assert {"sgd", "adam", "lbfgs", "sam"} <= set(host_load["optimizers"])
