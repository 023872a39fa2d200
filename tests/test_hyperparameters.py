"""Hyperparameters are the names a factory declares, never ``**kwargs``: tried with the real
pytorch-optimizer package (every class takes ``**kwargs``) through a real plugin package with
an entry point, tests/packages/harness-pytorchopt. Conformance opt-outs given at registration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.plugins import PluginHost, reset_host
from harness.testing.conformance import ConformanceSkip, check_optimizer
from tests.helpers import PACKAGES, pip_install, pythonpath, run_cli

pytest.importorskip("pytorch_optimizer")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """harness-pytorchopt pip-installed into a private target directory."""
    target = tmp_path_factory.mktemp("site-po")
    pip_install(PACKAGES / "harness-pytorchopt", target, tmp_path_factory.mktemp("build-po"))
    return target


@pytest.fixture
def env(site: Path) -> dict[str, str]:
    return {"PYTHONPATH": pythonpath(site), "HARNESS_PLUGINS": "harness,harness-pytorchopt"}


@pytest.fixture
def po_host(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginHost]:
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("HARNESS_PLUGINS", "harness,harness-pytorchopt")
    reset_host()
    yield PluginHost()
    reset_host()


@pytest.mark.parametrize(("setting", "words"), [
    ("po-adan.lrr=0.1", "unknown hyperparameter 'lrr' (did you mean 'lr'?)"),
    ("po-lion.weight_decy=0.1", "unknown hyperparameter 'weight_decy' "
                                "(did you mean 'weight_decay'?)"),
])
def test_a_misspelt_hyperparameter_of_a_kwargs_optimizer_is_one_line(
        env: dict[str, str], setting: str, words: str) -> None:
    optimizer = setting.split(".")[0]
    proc = run_cli("run", "-m", "regression", "-o", optimizer, "--set", setting, "--dry-run",
                   env={**env, "HARNESS_PLUGINS": "harness,po"})  # the well-formed plugin
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith("harness: error: ") and words in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_declared_and_read_hyperparameters_train(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression", "-o", "po-adan,po-lion", "-s", "0", "--steps", "6",
                   "--set", "po-adan.weight_decay=0.01", "--set", "po-lion.betas=[0.9,0.98]",
                   "--workers", "0", "--out", str(out), "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    hyper = {r["cell"]["optimizer"]: r["cell"]["hyper"] for r in records}
    assert {r["status"] for r in records} == {"ok"}
    assert hyper["po-adan"]["weight_decay"] == 0.01 and hyper["po-lion"]["betas"] == [0.9, 0.98]


def test_a_kwargs_factory_without_a_declaration_fails_its_plugin_alone(
        env: dict[str, str]) -> None:
    proc = run_cli("list", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["po"]["status"] == "loaded"
    bad = plugins["po-undeclared"]
    assert bad["status"] == "error" and bad["distribution"] == "harness-pytorchopt"
    assert ("register_optimizers: TypeError: optimizer 'po-undeclared': factory adan takes "
            "**hyper, so a misspelt hyperparameter would pass unnoticed; declare the names it "
            "takes: OptimizerSpec(..., hyperparameters=('lr', ...))") in bad["error"]
    assert {"po-adan", "po-lion", "po-ranger"} <= {o["name"] for o in data["optimizers"]}
    proc = run_cli("run", "-m", "regression", "-o", "po-undeclared", "--dry-run", env=env)
    assert proc.returncode == 2
    warning, error = proc.stderr.splitlines()[0], proc.stderr.splitlines()[-1]
    # The run's warning says where the plugin failed and where its traceback is.
    assert warning.startswith("harness: warning: plugin 'po-undeclared' from harness-pytorchopt")
    assert "harness_pytorchopt/undeclared.py:" in warning
    assert warning.endswith("(`harness list --verbose` shows the traceback)")
    assert error.startswith("harness: error: unknown optimizer 'po-undeclared': plugin "
                            "'po-undeclared' from harness-pytorchopt 0.1.0, which registers it, "
                            "failed to load"), error


def test_a_conformance_opt_out_given_at_registration(po_host: PluginHost) -> None:
    from harness_pytorchopt import RANGER_SKIP

    ranger = po_host.optimizers.get("po-ranger")
    assert ranger.conformance_skip == {"descends": RANGER_SKIP}
    assert not hasattr(ranger.factory, "conformance_skip")  # the library's class untouched
    with pytest.raises(ConformanceSkip, match="optimizer 'po-ranger' opts out of 'descends': "
                                              "Ranger steps uphill"):
        check_optimizer(ranger, "descends")
    check_optimizer(ranger, "metadata")
    check_optimizer(po_host.optimizers.get("po-lion"), "metadata")
    check_optimizer(po_host.optimizers.get("po-adan"), "builds")


def test_an_opt_out_of_an_unknown_check_fails_metadata(po_host: PluginHost) -> None:
    from dataclasses import replace

    from harness.testing.conformance import ConformanceFailure

    ranger = replace(po_host.optimizers.get("po-ranger"), conformance_skip={"descend": "typo"})
    with pytest.raises(ConformanceFailure, match="conformance_skip names an unknown check "
                                                 "'descend'; known: builds"):
        check_optimizer(ranger, "metadata")
