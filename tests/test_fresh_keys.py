"""Fresh keys: a cell's content key names the code that runs it beyond version numbers, so
``--resume`` (and any reuse of cells by key) never keeps a cell after that code changed.

* a plugin installed editable or from a local path adds the hash of its source;
* a plugin's ``harness_wraps`` (distribution names on its module) adds their versions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from harness.grid import GridSpec, expand
from harness.hookspecs import hookimpl
from harness.plugins import PluginHost
from harness.results import RunDirectory
from harness.run.resume import plan
from tests.helpers import PACKAGES, SIGN_SGD


@pytest.fixture
def local_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """harness-sampleplugin pip-installed from a local path (PEP 610: a file: URL)."""
    source = tmp_path / "src"
    shutil.copytree(PACKAGES / "harness-sampleplugin", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info"))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
                   check=True, cwd=tmp_path, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    monkeypatch.syspath_prepend(str(target))
    monkeypatch.setenv("HARNESS_PLUGINS", "harness,harness-sampleplugin")
    yield target
    sys.modules.pop("harness_sampleplugin", None)


def _line_cell(host: PluginHost) -> object:
    spec = GridSpec(models=["line"], optimizers=["sgd"], seeds=[0], steps=5)
    return expand(spec, host.problems, host.optimizers).cells[0]


def test_editing_a_locally_installed_plugin_changes_its_cells_keys(
        local_install: Path, tmp_path: Path) -> None:
    host = PluginHost()
    owner = host.problems.owner("line")
    assert owner.distribution == "harness-sampleplugin" and owner.sha256
    before = _line_cell(host)
    assert "harness-sampleplugin 1.2.3 source " in dict(before.versions)["problem"]  # type: ignore[attr-defined]
    # a resumed run holds the cell's record under its key...
    run_dir = RunDirectory(tmp_path / "run")
    from harness.results import write_json_atomic
    write_json_atomic(run_dir.cells_dir / f"{before.cell_id}.json",  # type: ignore[attr-defined]
                      {"cell_id": before.cell_id, "key": before.key,  # type: ignore[attr-defined]
                       "cell": before.to_dict(), "status": "ok", "summary": {},  # type: ignore[attr-defined]
                       "curve": []})
    grid = expand(GridSpec(models=["line"], optimizers=["sgd"], seeds=[0], steps=5),
                  host.problems, host.optimizers)
    assert plan(grid, run_dir, rerun_failed=False).todo == ()
    # ...then the plugin's code changes under the same version number
    module = local_install / "harness_sampleplugin" / "__init__.py"
    module.write_text(module.read_text() + "\n# a changed line\n")
    sys.modules.pop("harness_sampleplugin", None)
    host = PluginHost()
    after = _line_cell(host)
    assert after.key != before.key  # type: ignore[attr-defined]
    grid = expand(GridSpec(models=["line"], optimizers=["sgd"], seeds=[0], steps=5),
                  host.problems, host.optimizers)
    assert [c.key for c in plan(grid, run_dir, rerun_failed=False).todo] == [after.key]  # type: ignore[attr-defined]


def test_the_built_in_plugins_are_keyed_by_harness_s_version(host: PluginHost) -> None:
    """harness itself (its built-ins too) is named by its version, whatever its install."""
    owner = host.problems.owner("regression")
    assert owner.sha256 is None
    assert " source " not in dict(_regression_cell(host).versions)["problem"]


def _regression_cell(host: PluginHost):  # type: ignore[no-untyped-def]
    spec = GridSpec(models=["regression"], optimizers=["sgd"], seeds=[0], steps=5)
    return expand(spec, host.problems, host.optimizers).cells[0]


class Wrapper:
    """A plugin that registers an optimizer from a library it declares it wraps."""

    harness_wraps = ("fakewrapped",)

    @hookimpl
    def register_optimizers(self, registry: object) -> None:
        registry.add_torch("wrapped-sgd", torch.optim.SGD, lr=0.1)  # type: ignore[attr-defined]


def _installed(site: Path, version: str) -> None:
    for old in site.glob("fakewrapped-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"fakewrapped-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: fakewrapped\nVersion: {version}\n")


def test_upgrading_a_wrapped_library_changes_its_cells_keys(
        host: PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    monkeypatch.syspath_prepend(str(site))
    _installed(site, "1.0")

    def key() -> tuple[str, str]:
        info = host.register(Wrapper(), "wrapper")
        try:
            assert info.wraps == (("fakewrapped", host.optimizers.owner("wrapped-sgd")
                                   .wraps[0][1]),)
            spec = GridSpec(models=["regression"], optimizers=["wrapped-sgd"], seeds=[0],
                            steps=5)
            cell = expand(spec, host.problems, host.optimizers).cells[0]
            return cell.key, dict(cell.versions)["optimizer"]
        finally:
            host.unregister("wrapper")

    old_key, old_origin = key()
    assert old_origin.endswith("; wraps fakewrapped 1.0")
    _installed(site, "2.0")
    new_key, new_origin = key()
    assert new_origin.endswith("; wraps fakewrapped 2.0") and new_key != old_key


def test_resume_moves_a_stale_record_aside(tmp_path: Path) -> None:
    """A plugin file edited between a run and its ``--resume``: the cell runs again under
    its new key, and the old record goes to ``cells/stale/`` instead of staying in
    ``cells/`` beside the new one."""
    from harness.cli import main

    plugin = tmp_path / "sign_sgd.py"
    plugin.write_text(SIGN_SGD)
    out = tmp_path / "run"
    assert main(["run", "-m", "regression", "-o", "signsgd", "-s", "0", "--steps", "20",
                 "--plugin", str(plugin), "--workers", "0", "--out", str(out), "--quiet"]) == 0
    (old,) = (out / "cells").glob("*.json")
    plugin.write_text(SIGN_SGD.replace("lr=0.01", "lr=0.02"))
    assert main(["run", "--resume", str(out), "--workers", "0", "--quiet"]) == 0
    (new,) = (out / "cells").glob("*.json")
    assert new.name != old.name
    assert [p.name for p in (out / "cells" / "stale").iterdir()] == [old.name]
    import pandas as pd
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cell_id"]) == [new.stem]
