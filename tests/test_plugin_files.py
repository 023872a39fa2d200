"""Plugins from files: ``--plugin PATH`` and a grid file's ``plugins = [...]``, through the CLI.

A ten-line optimizer file is a whole plugin: no package, no entry point, no pip install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import SIGN_SGD, run_cli

GRID = ["-m", "regression", "-s", "0", "--steps", "20", "--quiet"]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


def test_a_ten_line_optimizer_file_runs_end_to_end(tmp_path: Path) -> None:
    plugin = _write(tmp_path / "exp" / "sign_sgd.py", SIGN_SGD)
    listed = run_cli("list", "--plugin", "exp/sign_sgd.py", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "signsgd" in listed.stdout and str(plugin) in listed.stdout
    # in worker processes (--workers 1), as a user's run does
    run = run_cli("run", *GRID, "-o", "sgd,signsgd", "--workers", "1", "--plugin",
                  "exp/sign_sgd.py", "--out", "r", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    records = _records(tmp_path / "r")
    assert sorted(r["cell"]["optimizer"] for r in records) == ["sgd", "signsgd"]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    sign = next(r for r in records if r["cell"]["optimizer"] == "signsgd")
    plain = next(r for r in records if r["cell"]["optimizer"] == "sgd")
    assert sign["summary"]["final_loss"] != plain["summary"]["final_loss"]  # it did its own step
    assert sign["cell"]["versions"]["optimizer"].startswith("file sign_sgd ")
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["options"]["plugin_files"] == [str(plugin)]
    info = next(p for p in manifest["plugins"] if p["name"] == "sign_sgd")
    import hashlib
    assert info["sha256"] == "sha256:" + hashlib.sha256(plugin.read_bytes()).hexdigest()
    assert info["source"] == str(plugin) and info["status"] == "loaded"
    report = run_cli("report", "r", cwd=tmp_path)  # the report names the file and its hash
    assert report.returncode == 0, report.stderr
    assert f"{plugin} (sha256 {info['sha256'][7:19]})" in \
        (tmp_path / "r" / "report" / "index.html").read_text()
    # a resumed run loads the file again, from its manifest
    resumed = run_cli("run", "--resume", "r", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "2 already done" in resumed.stdout
    # the file is the code of its cells: edited, an extension of the run is refused
    plugin.write_text(SIGN_SGD.replace("p.grad.sign_()", "p.grad.sign_().mul_(0.5)"))
    extended = run_cli("run", *GRID, "-o", "sgd,signsgd,adam", "--workers", "0", "--plugin",
                       "exp/sign_sgd.py", "--out", "r", "--extend", cwd=tmp_path)
    assert extended.returncode == 2, extended.stderr
    assert "ran with optimizer code file sign_sgd" in extended.stderr
    plugin.write_text(SIGN_SGD.replace("lr=0.01", "lr=0.02"))  # its cells' default changed
    extended = run_cli("run", *GRID, "-o", "sgd,signsgd,adam", "--workers", "0", "--plugin",
                       "exp/sign_sgd.py", "--out", "r", "--extend", cwd=tmp_path)
    assert extended.returncode == 2, extended.stderr
    assert "signsgd lr=0.01 cpu seed 0 is not among the cells its grids give now" in \
        extended.stderr


def test_a_broken_file_is_a_visible_load_error_and_the_others_work(tmp_path: Path) -> None:
    _write(tmp_path / "sign_sgd.py", SIGN_SGD)
    _write(tmp_path / "broken.py", "import no_such_module_for_harness\n")
    listed = run_cli("list", "--json", "--plugin", "broken.py", "--plugin", "sign_sgd.py",
                     cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["broken"]["status"] == "error"
    assert "no_such_module_for_harness" in plugins["broken"]["error"]
    assert plugins["sign_sgd"]["status"] == "loaded"
    run = run_cli("run", *GRID, "-o", "signsgd", "--workers", "0", "--plugin", "broken.py",
                  "--plugin", "sign_sgd.py", "--out", "r", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "plugin 'broken' from" in run.stderr and "no_such_module_for_harness" in run.stderr
    assert [r["status"] for r in _records(tmp_path / "r")] == ["ok"]


def test_a_grid_file_names_plugins_relative_to_itself(tmp_path: Path) -> None:
    _write(tmp_path / "bench" / "opts" / "sign_sgd.py", SIGN_SGD)
    # a package directory, with a relative import inside it
    _write(tmp_path / "bench" / "mypkg" / "__init__.py",
           "from harness import hookimpl\nfrom .opt import Plain\n\n\n@hookimpl\n"
           "def register_optimizers(registry):\n    registry.add_torch('plain', Plain, lr=0.1)\n")
    _write(tmp_path / "bench" / "mypkg" / "opt.py",
           "import torch\n\n\nclass Plain(torch.optim.SGD):\n    pass\n")
    _write(tmp_path / "bench" / "grid.toml",
           'models = ["regression"]\noptimizers = ["signsgd", "plain"]\nseeds = [0]\n'
           'steps = 20\nplugins = ["opts/sign_sgd.py", "mypkg"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = run_cli("run", str(tmp_path / "bench" / "grid.toml"), "--workers", "1", "--quiet",
                  "--out", "r", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    assert sorted(r["cell"]["optimizer"] for r in _records(elsewhere / "r")) == \
        ["plain", "signsgd"]
    manifest = json.loads((elsewhere / "r" / "manifest.json").read_text())
    sha = {p["name"]: p["sha256"] for p in manifest["plugins"] if p["source"]}
    assert set(sha) == {"sign_sgd", "mypkg"} and all(v.startswith("sha256:") for v in sha.values())


def test_bad_plugin_paths_are_one_line_errors(tmp_path: Path) -> None:
    _write(tmp_path / "notes.txt", "hello\n")
    (tmp_path / "nopkg").mkdir()
    _write(tmp_path / "grid.toml", 'models = ["regression"]\nplugins = [3]\n')
    for args, words in ((["list", "--plugin", "missing.py"], "no such file or directory"),
                        (["list", "--plugin", "notes.txt"], "expected a .py file"),
                        (["run", *GRID, "--plugin", "nopkg"], "must be a package"),
                        (["run", "grid.toml", "--dry-run"], "plugins: expected a list of paths")):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert words in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_plugin_source_is_written_elsewhere_as_it_was_hashed(tmp_path: Path) -> None:
    """What executors ship to workers on other machines: the source, checked by its hash."""
    import dataclasses

    import pytest

    from harness.executor import PluginSource
    from harness.plugins import files

    package = tmp_path / "mypkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .sub.impl import register_optimizers\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "impl.py").write_text(SIGN_SGD)
    (package / "sub-notes.py").write_text("# before sub/ as text, after it as a path\n")
    source = PluginSource.read(package)
    assert source.sha256 == files.source_hash(package) and source.name == "mypkg"
    written = source.write(tmp_path / "worker")
    assert written.name == "mypkg" and written.parent.parent == tmp_path / "worker"
    assert files.source_hash(written) == source.sha256
    assert source.write(tmp_path / "worker") == written  # written once
    single = PluginSource.read(_write(tmp_path / "sign_sgd.py", SIGN_SGD))
    there = single.write(tmp_path / "worker")
    assert there.name == "sign_sgd.py" and there.read_text() == SIGN_SGD
    damaged = dataclasses.replace(single, files=(("sign_sgd.py", b"import os\n"),))
    with pytest.raises(ValueError, match="does not match its hash"):
        damaged.write(tmp_path / "other")


def test_a_dask_worker_refuses_plugin_sources_other_than_the_cells() -> None:
    from harness_builtins.dask_worker import file_mismatch

    from harness.cell import Cell
    from harness.executor import PluginSource

    files = (("sign_sgd.py", SIGN_SGD.encode()),)
    source = PluginSource("/client/sign_sgd.py", PluginSource.digest(files, False), files)
    digest = source.sha256.removeprefix("sha256:")[:16]
    cell = Cell("regression", "signsgd", "cpu", 0, 10, 8,
                versions=(("optimizer", f"file sign_sgd {digest}"),))
    assert file_mismatch(cell, [source]) is None
    missing = file_mismatch(cell, [])
    assert missing is not None and "'sign_sgd' the cell needs was not sent" in missing
    other = Cell("regression", "signsgd", "cpu", 0, 10, 8,
                 versions=(("optimizer", "file sign_sgd 0123456789abcdef"),))
    message = file_mismatch(other, [source])
    assert message is not None and "not the 0123456789abcdef the cell was planned" in message
