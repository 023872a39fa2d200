"""The plugin host: discovery through entry points, switches, failures kept apart."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from harness import OptimizerSpec, Problem, Supervised, hookimpl
from harness.errors import DuplicateNameError, UsageError
from harness.plugins import PluginHost
from tests.helpers import pythonpath, run_cli

BUILTIN_MODELS = {"regression", "regression-sequential", "classification", "cnn", "lstm",
                  "rnn-regression", "autoencoder", "dropout", "batchnorm"}
BUILTIN_OPTIMIZERS = {"sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw", "lbfgs", "sam"}


def test_builtins_come_through_the_entry_point_group(host: PluginHost) -> None:
    assert set(host.problems.names()) >= BUILTIN_MODELS
    assert set(host.optimizers.names()) == BUILTIN_OPTIMIZERS
    for name in BUILTIN_MODELS:
        owner = host.problems.owner(name)
        assert owner.distribution == "harness" and owner.name.startswith("builtin-")
    assert host.errors() == []


def test_builtin_executor_is_a_plugin_too(host: PluginHost) -> None:
    assert "local" in host.executors
    assert host.executors.owner("local").name == "builtin-executors"


def test_tutorial_optimizer_defaults(host: PluginHost) -> None:
    opt = host.optimizers
    assert opt.get("sgd").defaults == {"lr": 0.01}
    assert opt.get("momentum").defaults["momentum"] == 0.8
    assert opt.get("rmsprop").defaults["alpha"] == 0.9
    assert opt.get("adam").defaults["betas"] == (0.9, 0.99)
    assert opt.get("adagrad").factory is torch.optim.Adagrad
    assert opt.get("adamw").factory is torch.optim.AdamW


def test_block_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "builtin-mnist")
    host = PluginHost()
    assert "cnn" not in host.problems and "regression" in host.problems
    blocked = {p.name: p.status for p in host.plugins}
    assert blocked["builtin-mnist"] == "blocked"


def test_load_only_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_PLUGINS", "builtin-optimizers,builtin-mlp")
    host = PluginHost()
    assert set(host.problems.names()) == {"regression", "regression-sequential", "classification"}
    statuses = {p.name: p.status for p in host.plugins}
    assert statuses["builtin-rnn"] == "not-selected"
    monkeypatch.setenv("HARNESS_PLUGINS", "")
    assert len(PluginHost().problems) == 0


class _Tiny(Problem):
    name = "tiny"
    description = "a constant target"
    steps = 5

    def build(self, ctx):  # type: ignore[no-untyped-def]
        model = torch.nn.Linear(1, 1)
        x = torch.ones(4, 1)
        return Supervised(model=model, loss_fn=torch.nn.functional.mse_loss, inputs=x,
                          targets=x, evaluate=lambda m: {})


def test_in_process_plugin_registers_and_unregisters(host: PluginHost, register_plugin) -> None:  # type: ignore[no-untyped-def]
    class Plugin:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            registry.add(_Tiny())

    register_plugin(Plugin(), "tiny-plugin")
    assert host.problems.owner("tiny").name == "tiny-plugin"
    host.unregister("tiny-plugin")
    assert "tiny" not in host.problems


def test_duplicate_name_names_both_plugins_and_is_rolled_back(host: PluginHost) -> None:
    class Dup:
        @hookimpl
        def register_optimizers(self, registry):  # type: ignore[no-untyped-def]
            registry.add(OptimizerSpec("fresh", torch.optim.SGD, {"lr": 0.1}))
            registry.add(OptimizerSpec("adam", torch.optim.SGD, {"lr": 0.1}))

    info = host.register(Dup(), "dup")
    assert info.status == "loaded"
    assert "fresh" not in host.optimizers  # the failing plugin's additions are undone
    assert host.optimizers.owner("adam").name == "builtin-optimizers"
    [err] = host.errors()
    assert err.name == "dup"
    assert "'adam'" in err.error and "'dup'" in err.error and "'builtin-optimizers'" in err.error


def test_duplicate_error_type() -> None:
    from harness.registry import OptimizerRegistry

    reg = OptimizerRegistry()
    reg.add(OptimizerSpec("x", torch.optim.SGD))
    with pytest.raises(DuplicateNameError):
        reg.add(OptimizerSpec("x", torch.optim.SGD))


def test_hookimpl_without_spec_is_rejected_alone(host: PluginHost) -> None:
    class Typo:
        @hookimpl
        def register_modles(self, registry):  # type: ignore[no-untyped-def]
            pass

    info = host.register(Typo(), "typo")
    assert info.status == "error" and "register_modles" in (info.error or "")
    assert "regression" in host.problems


def test_unknown_name_suggests_the_closest(host: PluginHost) -> None:
    with pytest.raises(UsageError, match="did you mean 'regression'"):
        host.problems.get("regresion")


def test_invalid_names_are_refused() -> None:
    from harness.registry import ProblemRegistry

    class Bad(_Tiny):
        name = "../escape"

    with pytest.raises(ValueError, match="invalid model name"):
        ProblemRegistry().add(Bad())


# -- installed third-party distributions -------------------------------------------
@pytest.fixture
def with_installed(installed_packages: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(installed_packages))
    monkeypatch.setenv("HARNESS_PLUGINS", "harness,harness-sampleplugin,harness-brokenplugin")
    return installed_packages


def test_installed_package_is_discovered(with_installed: Path) -> None:
    host = PluginHost()
    owner = host.problems.owner("line")
    assert (owner.name, owner.distribution, owner.version) == (
        "sampleplugin", "harness-sampleplugin", "1.2.3")
    assert host.optimizers.owner("signsgd").distribution == "harness-sampleplugin"


def test_broken_plugins_are_recorded_and_others_work(with_installed: Path) -> None:
    host = PluginHost()
    by_name = {p.name: p for p in host.plugins}
    assert by_name["broken-import"].status == "error"
    assert "harness_dependency_that_does_not_exist" in by_name["broken-import"].error
    assert by_name["broken-import"].distribution == "harness-brokenplugin"
    assert by_name["misspelled-hook"].status == "error"
    assert "register_modles" in by_name["misspelled-hook"].error
    dup = by_name["duplicate-model"]
    assert dup.status == "error"
    assert "'duplicate-model'" in dup.error and "'builtin-mlp'" in dup.error
    assert "mine" not in host.problems
    assert by_name["raises-in-hook"].status == "error"
    assert "half-registered" not in host.optimizers
    # Everything else still works.
    assert "line" in host.problems and "signsgd" in host.optimizers
    assert host.problems.owner("regression").name == "builtin-mlp"


@pytest.mark.slow
def test_cli_lists_load_errors_and_runs_the_installed_plugin(
    with_installed: Path, tmp_path: Path
) -> None:
    env = {"PYTHONPATH": pythonpath(with_installed)}
    listed = run_cli("list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    errors = {p["name"]: p["error"] for p in data["plugins"] if p["status"] == "error"}
    assert set(errors) == {"broken-import", "duplicate-model", "misspelled-hook",
                           "raises-in-hook", "fails-late", "duplicate-later", "exits-on-import",
                           "exits-in-hook", "bad-param", "bad-factory"}
    text = run_cli("list", env=env)
    assert "harness_dependency_that_does_not_exist" in text.stdout
    # What the README promises: each problem and optimizer with its plugin, and the plugin
    # with its distribution and version.
    lines = text.stdout.splitlines()
    assert any(line.split()[:1] == ["signsgd"] and line.endswith("[sampleplugin]")
               for line in lines)
    assert any(line.split()[:3] == ["sampleplugin", "harness-sampleplugin", "1.2.3"]
               for line in lines)
    out = tmp_path / "run"
    ran = run_cli("run", "-m", "line,regression", "-o", "signsgd,adam", "-s", "0", "--steps", "30",
                  "--out", str(out), "--quiet", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "failed to load" in ran.stderr  # a warning, not a crash
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["plugins"]["harness-sampleplugin"] == "1.2.3"
    assert sys.executable  # the subprocess used this interpreter


def test_a_third_party_executor_runs_the_grid(host: PluginHost, register_plugin,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    """register_executors: an in-process executor receives the cells; the runner writes."""
    from harness import ExecutorSpec, execute_cell
    from harness.cli import main

    seen: list[str] = []
    labels: list[str] = []

    class Recording:
        def __init__(self, limits, run_options, context):  # type: ignore[no-untyped-def]
            self.limits, self.run_options, self.context = limits, run_options, context

        def run(self, cells, on_start, on_window, on_result):  # type: ignore[no-untyped-def]
            labels.append(self.context.settings["label"])
            for cell in cells:
                seen.append(cell.problem)
                on_start(cell)
                on_result(execute_cell(cell, self.limits, self.run_options,
                                       resolve=self.context.resolve))

    class Plugin:
        @hookimpl
        def register_executors(self, registry):  # type: ignore[no-untyped-def]
            registry.add(ExecutorSpec("recording", Recording, "runs inline and remembers",
                                      settings=("label",)))

    register_plugin(Plugin(), "recording-executor")
    out = tmp_path / "run"
    code = main(["run", "-m", "regression", "-o", "sgd", "-s", "0-1", "--steps", "5",
                 "--executor", "recording", "--executor-option", "label=x",
                 "--out", str(out), "--quiet"])
    assert code == 0
    assert seen == ["regression", "regression"] and labels == ["x"]
    assert len(list((out / "cells").glob("*.json"))) == 2


# -- a failed plugin contributes nothing -------------------------------------------------
def test_a_plugin_failing_in_a_later_hook_keeps_nothing_from_its_earlier_ones(
    host: PluginHost,
) -> None:
    class Half:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            registry.add(_Tiny())

        @hookimpl
        def register_optimizers(self, registry):  # type: ignore[no-untyped-def]
            registry.add(OptimizerSpec("half-sgd", torch.optim.SGD, {"lr": 0.1}))
            raise RuntimeError("broke in the second hook")

    class Healthy:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            registry.add(_Tiny())

    host.register(Half(), "half")
    host.register(Healthy(), "healthy")
    try:
        assert "half-sgd" not in host.optimizers
        assert host.problems.owner("tiny").name == "healthy"  # not refused as a duplicate
        status = {p.name: (p.status, p.error) for p in host.plugins}
        assert status["healthy"] == ("loaded", None)
        assert status["half"][0] == "error"
        assert re.fullmatch(r"register_optimizers: RuntimeError: broke in the second hook "
                            r"\(at \S*test_plugins\.py:\d+\)", status["half"][1] or "")
    finally:
        host.unregister("half")
        host.unregister("healthy")


def test_keyboard_interrupt_in_a_hook_is_not_swallowed(host: PluginHost) -> None:
    class Interrupted:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            raise KeyboardInterrupt

    host.register(Interrupted(), "interrupted")
    try:
        with pytest.raises(KeyboardInterrupt):
            host.problems  # noqa: B018
    finally:
        host.unregister("interrupted")


def test_a_failed_plugins_other_hooks_are_not_called(host: PluginHost) -> None:
    class Failed:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            raise RuntimeError("no models today")

        @hookimpl
        def manifest_metadata(self):  # type: ignore[no-untyped-def]
            return {"should": "not appear"}

    host.register(Failed(), "failed")
    try:
        assert "failed" not in host.manifest_metadata()
        assert [c.plugin for c in host.call_each("manifest_metadata")].count("failed") == 0
    finally:
        host.unregister("failed")


def test_a_load_error_says_where_and_keeps_the_traceback(with_installed: Path) -> None:
    by_name = {p.name: p for p in PluginHost().plugins}
    imported = by_name["broken-import"]
    assert imported.error is not None and imported.error.startswith(
        "ModuleNotFoundError: No module named 'harness_dependency_that_does_not_exist' (at ")
    assert imported.error.endswith("harness_brokenplugin/fails_on_import.py:3)")
    assert imported.traceback is not None
    assert imported.traceback.startswith("Traceback (most recent call last):")
    assert 'fails_on_import.py", line 3' in imported.traceback
    # A hook that raises: the plugin's own line, not the host's or pluggy's.
    raises = by_name["raises-in-hook"]
    assert raises.error is not None and raises.error.endswith("harness_brokenplugin/raises.py:11)")
    # A spec refused by the registry: the plugin's call, not the check that refused it.
    factory = by_name["bad-factory"]
    assert factory.error is not None and "harness_brokenplugin/bad_factory.py:" in factory.error
    assert "harness/optimizer.py" in (factory.traceback or "")


@pytest.mark.slow
def test_list_verbose_and_json_give_the_traceback(with_installed: Path) -> None:
    env = {"PYTHONPATH": pythonpath(with_installed)}
    plain = run_cli("list", env=env)
    assert "error: ModuleNotFoundError: No module named" in plain.stdout
    assert "fails_on_import.py:3)" in plain.stdout
    assert "Traceback" not in plain.stdout
    assert "(harness list --verbose shows each load error's traceback)" in plain.stdout
    verbose = run_cli("list", "--verbose", env=env).stdout
    assert "Traceback (most recent call last):" in verbose
    assert 'fails_on_import.py", line 3, in <module>' in verbose
    data = json.loads(run_cli("list", "--json", env=env).stdout)
    [broken] = [p for p in data["plugins"] if p["name"] == "broken-import"]
    assert broken["traceback"].startswith("Traceback (most recent call last):")
    # At most 100 columns, but for a word longer than that (a path) on a line of its own.
    assert all(len(t) <= 100 or len(t.split()) == 1 for t in plain.stdout.splitlines()
               if t.isascii())


def test_failed_late_plugins_hold_no_names(with_installed: Path) -> None:
    host = PluginHost()
    by_name = {p.name: p for p in host.plugins}
    late = by_name["fails-late"]
    assert late.status == "error"
    assert late.error is not None and late.error.startswith(
        "register_optimizers: RuntimeError: broke after registering its models (at ")
    assert "late-model" not in host.problems and "late-sgd" not in host.optimizers
    # harness-sampleplugin loads after it and gets the name the failed plugin had taken.
    assert by_name["sampleplugin"].status == "loaded"
    assert host.problems.owner("line").name == "sampleplugin"
    dup = by_name["duplicate-later"]
    assert dup.status == "error" and dup.error.startswith("register_optimizers: Duplicate")
    assert "'adam'" in dup.error and "'builtin-optimizers'" in dup.error
    assert "own-model" not in host.problems
    assert host.optimizers.owner("adam").name == "builtin-optimizers"


def test_sys_exit_in_a_plugin_is_recorded_against_it(with_installed: Path) -> None:
    host = PluginHost()
    by_name = {p.name: p for p in host.plugins}
    assert by_name["exits-on-import"].status == "error"
    assert "SystemExit" in by_name["exits-on-import"].error
    assert "this plugin needs a GPU" in by_name["exits-on-import"].error
    assert by_name["exits-in-hook"].status == "error"
    assert by_name["exits-in-hook"].error.startswith("register_models: SystemExit")
    assert "line" in host.problems and "regression" in host.problems


def test_bad_params_and_factories_are_load_errors(with_installed: Path) -> None:
    host = PluginHost()
    by_name = {p.name: p for p in host.plugins}
    assert by_name["bad-param"].status == "error"
    assert "'root'" in by_name["bad-param"].error and "PosixPath" in by_name["bad-param"].error
    assert "rooted" not in host.problems
    assert by_name["bad-factory"].status == "error"
    assert "'momentun'" in by_name["bad-factory"].error
    assert "bad-key" not in host.optimizers


# -- an unknown name says which plugins failed ---------------------------------------------
def test_unknown_name_owned_by_a_failed_plugin_names_it(with_installed: Path) -> None:
    host = PluginHost()
    with pytest.raises(UsageError) as info:
        host.problems.get("late-model")
    message = str(info.value)
    assert "\n" not in message
    assert "plugin 'fails-late' from harness-brokenplugin 0.0.1" in message
    assert "failed to load" in message and "RuntimeError: broke after" in message


def test_unknown_name_lists_the_plugins_that_failed(with_installed: Path) -> None:
    host = PluginHost()
    with pytest.raises(UsageError) as info:
        host.problems.get("nowhere")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown model 'nowhere'")
    assert f"; {len(host.errors())} plugins failed to load: " in message
    assert all(p.label() in message for p in host.errors())  # many: their names alone
    assert "ModuleNotFoundError" not in message
    assert message.endswith("see `harness list`")


def test_unknown_name_gives_a_few_failed_plugins_errors(host: PluginHost) -> None:
    class Failed:
        @hookimpl
        def register_models(self, registry):  # type: ignore[no-untyped-def]
            raise RuntimeError("no models today")

    host.register(Failed(), "failed")
    try:
        with pytest.raises(UsageError) as info:
            host.optimizers.get("nowhere")
        assert re.search(r"; 1 plugin failed to load: 'failed' \(register_models: RuntimeError: "
                         r"no models today \(at \S*test_plugins\.py:\d+\)\) — see `harness list`$",
                         str(info.value))
    finally:
        host.unregister("failed")


def test_unknown_name_without_failed_plugins_is_unchanged(host: PluginHost) -> None:
    with pytest.raises(UsageError) as info:
        host.problems.get("regresion")
    assert "failed to load" not in str(info.value)


@pytest.mark.slow
def test_cli_unknown_model_names_the_failed_plugin(with_installed: Path) -> None:
    env = {"PYTHONPATH": pythonpath(with_installed)}
    ran = run_cli("run", "-m", "late-model", "-o", "sgd", "--dry-run", env=env)
    assert ran.returncode == 2
    assert "Traceback" not in ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1
    assert "plugin 'fails-late' from harness-brokenplugin 0.0.1" in errors[0]
    assert "harness: warning: plugin 'broken-import'" in ran.stderr  # warned before the error


# -- environment switches -----------------------------------------------------------------
def test_switch_patterns_are_normalised_like_distribution_names(
    with_installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "Harness_BrokenPlugin")
    host = PluginHost()
    statuses = {p.name: p.status for p in host.plugins if p.distribution == "harness-brokenplugin"}
    assert statuses and set(statuses.values()) == {"blocked"}
    monkeypatch.delenv("HARNESS_BLOCK_PLUGINS")
    monkeypatch.setenv("HARNESS_PLUGINS", "harness,harness.sampleplugin")
    assert PluginHost().problems.owner("line").distribution == "harness-sampleplugin"


def test_the_kit_reports_a_load_error_with_its_traceback(with_installed: Path) -> None:
    from harness.testing.selection import select
    from harness.testing.suite import test_plugin_loads as plugin_loads

    selection = select(["harness-brokenplugin"], host=PluginHost())
    with pytest.raises(pytest.fail.Exception) as info:
        plugin_loads("broken-import", selection)
    text = str(info.value)
    assert text.startswith("conformance check 'loads' failed for plugin 'broken-import' from "
                           "harness-brokenplugin 0.0.1: ModuleNotFoundError: No module named "
                           "'harness_dependency_that_does_not_exist' (at ")
    assert "Traceback (most recent call last):" in text
    assert 'fails_on_import.py", line 3, in <module>' in text


def test_list_shows_descriptions_in_aligned_columns_of_at_most_100(
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    from harness.cli.catalogue import format_catalogue

    assert main(["list"]) == 0
    text = capsys.readouterr().out
    adam = next(t for t in text.splitlines() if t.split()[:1] == ["adam"])
    assert "Adam, betas (0.9, 0.99)" in adam and adam.endswith("[builtin-optimizers]")  # described
    assert any(t.strip().startswith("defaults: lr=") for t in text.splitlines())
    assert max(len(t) for t in text.splitlines()) <= 100
    # A long distribution name widens its column instead of pushing its row's status out.
    plugins = [{"name": n, "distribution": d, "version": "1.0", "status": "loaded",
                "error": None} for n, d in (("a", "short"),
                                           ("b", "harness-a-very-long-distribution-name"))]
    lines = format_catalogue({"problems": [], "optimizers": [], "executors": [],
                              "plugins": plugins}).splitlines()
    rows = [t for t in lines if t.endswith("loaded")]
    assert len({t.index("loaded") for t in rows}) == 1, rows
