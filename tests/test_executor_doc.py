"""The executor example in docs/plugins.md is run as written: real worker processes."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any

import pytest

import harness
from harness.cli import main
from harness.outcome import EXIT_CELLS_FAILED

DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"


def example_code() -> str:
    """The first python block of the ``## register_executors(registry)`` section."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## register_executors(registry)"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "docs/plugins.md: the register_executors section has no python example"
    return blocks[0]


def test_the_example_uses_only_the_public_api() -> None:
    code = example_code()
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, flags=re.M)
    assert imports == ["harness"], imports
    used = set(re.findall(r"\bharness\.(\w+)", code))
    assert used and used <= set(harness.__all__), used - set(harness.__all__)


@pytest.fixture
def example(register_plugin: Any) -> types.ModuleType:
    module = types.ModuleType("docs_executor_example")
    exec(compile(example_code(), str(DOCS), "exec"), module.__dict__)
    register_plugin(module, "docs-executor-example")
    return module


def test_the_example_runs_a_grid(example: types.ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(["run", "-m", "regression", "-o", "sgd,adam", "-s", "0", "--steps", "20",
                 "--windows", "4", "--executor", "one-worker", "--out", str(out), "--quiet"])
    assert code == 0
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    assert sorted(r["cell"]["optimizer"] for r in records) == ["adam", "sgd"]
    assert all(r["status"] == "ok" and r["curve"] for r in records), records
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["executor"] == {"name": "one-worker", "settings": {}}


def test_the_example_honours_the_timeout(example: types.ModuleType, tmp_path: Path) -> None:
    """The pool the example runs its cells in kills a cell at the run's --timeout."""
    out = tmp_path / "run"
    code = main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "100000000",
                 "--timeout", "2", "--executor", "one-worker", "--out", str(out), "--quiet"])
    assert code == EXIT_CELLS_FAILED
    [record] = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert record["status"] == "timeout", record["status"]
    assert "exceeded the 2 s timeout" in record["error"]


def test_a_local_flag_is_refused_for_the_example(example: types.ModuleType,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "regression", "--executor", "one-worker", "--pin-cpus",
                 "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["harness: error: executor 'one-worker' has no setting 'pin_cpus' "
                   "(it takes: none)"]
