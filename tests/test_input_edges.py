"""Inputs that once got through (issue 21): deep nesting, empty grid files, names with a
trailing newline or a comma, digits of other scripts. Each is one line and exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import harness
from harness.cli import main
from harness.params import check_name
from harness.registry import OptimizerRegistry, ProblemRegistry


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("harness: error: ")
    return err[0]


@pytest.mark.parametrize(("text", "words"), [
    ("[" + ".".join(["t"] * 1000) + "]\nx = 1\n", "table [t.t.t"),
    ("[model.regression" + ".a" * 1000 + "]\nx = 1\n", "table [model.regression.a"),
    ("x = " + "[" * 1000 + "]" * 1000 + "\n", "line 1: x: a value is nested more than 16"),
    ("x = " + "{a = " * 1000 + "1" + "}" * 1000 + "\n", "line 1: x: a value is nested"),
    ('models = ["regression"]\n[optimizer.adam]\nbetas = ' + "[" * 40 + "]" * 40,
     "line 3: optimizer.adam.betas: a value is nested"),
])
def test_deep_nesting_in_a_grid_file_is_one_line_naming_where(
        text: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    assert main(["run", str(grid), "--dry-run"]) == 2
    assert words in _one_line_error(capsys)


def test_deep_nesting_in_a_set_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "regression", "-o", "adam", "--set", "adam.betas=" + "[" * 1000,
                 "--dry-run"]) == 2
    assert "is nested more than 16 levels deep" in _one_line_error(capsys)


def test_brackets_in_strings_comments_and_headers_are_not_nesting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["regression"]  # ' + "[" * 40 + "\n"
                    'optimizers = ["adam"]\nseeds = "0"\n'
                    "[optimizer.adam]\nbetas = [\n  [0.9, 0.99],\n  [0.8, 0.9],\n]\n"
                    "[model.regression]\nactivation = '" + "[" * 40 + "'\n")
    assert main(["run", str(grid), "--dry-run"]) == 2  # the activation's value is refused
    assert "activation" in _one_line_error(capsys)


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing here\n", "[params]\n[model.cnn]\n"])
def test_an_empty_grid_file_is_an_error_not_the_default_grid(
        text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(text)
    assert main(["run", str(grid), "--dry-run"]) == 2
    assert "is empty" in _one_line_error(capsys)


@pytest.mark.parametrize("args", [
    ["-s", "\u0663"],                      # ARABIC-INDIC DIGIT THREE
    ["-s", "0-\u0663"],
    ["--steps", "\u0663\u0660"],
    ["--steps", "\uff11\uff10"],          # FULLWIDTH digits
    ["--windows", "\u0663"],
    ["--timeout", "\u0663"],
    ["-d", "cuda:\u0661"],
])
def test_digits_outside_ascii_are_refused(args: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "regression", "-o", "sgd", *args, "--dry-run"]) == 2
    _one_line_error(capsys)


def test_compare_thresholds_take_ascii_digits_only(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a" / "cells").mkdir(parents=True)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a"), "--k", "\u0663"]) == 2
    assert "--k: expected a number" in _one_line_error(capsys)


@pytest.mark.parametrize("name", ["adam\n", "adam\n\n", "", "a,b", "a/b", "Adam", " adam"])
def test_names_must_match_whole(name: str) -> None:
    with pytest.raises(ValueError, match="invalid optimizer name"):
        check_name("optimizer", name)


class _Linear(harness.Problem):
    description = "a linear unit"
    metrics: tuple[str, ...] = ("test_loss",)

    def __init__(self, name: str = "linear", **attrs: Any) -> None:
        self.name = name
        for key, value in attrs.items():
            setattr(self, key, value)

    def build(self, ctx: harness.BuildContext) -> Any:  # never called
        raise NotImplementedError


@pytest.mark.parametrize(("attrs", "words"), [
    ({"metrics": ("test_loss\n",)}, "metric name 'test_loss\\n'"),
    ({"metrics": ("loss,acc",)}, "metric name 'loss,acc'"),
    ({"metrics": ("a/b",)}, "metric name 'a/b'"),
    ({"metrics": ("",)}, "metric name ''"),
    ({"params": (harness.Param("Bad Name", 1),)}, "parameter name 'Bad Name'"),
    ({"params": (harness.Param("p\n", 1),)}, "parameter name 'p\\n'"),
])
def test_a_problem_with_a_name_that_breaks_a_table_is_refused(attrs: dict[str, Any],
                                                              words: str) -> None:
    with pytest.raises(ValueError, match="invalid model 'linear': ") as info:
        ProblemRegistry().add(_Linear(**attrs))
    assert words in str(info.value)


@pytest.mark.parametrize("key", ["lr\n", "l,r", "a/b", "", "two words"])
def test_an_optimizer_with_a_hyperparameter_name_that_breaks_a_table_is_refused(
        key: str) -> None:
    def factory(params: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    with pytest.raises((TypeError, ValueError)) as info:
        OptimizerRegistry().add(harness.OptimizerSpec(name="opt", factory=factory,
                                                      defaults={key: 0.1},
                                                      hyperparameters=(key,)))
    assert repr(key) in str(info.value)


def test_a_plugin_with_a_bad_metric_name_fails_to_load_and_is_named(
        register_plugin: Any, host: Any) -> None:
    class Plugin:
        @harness.hookimpl
        def register_problems(self, registry: ProblemRegistry) -> None:
            registry.add(_Linear(metrics=("loss\n",)))

    host.register(Plugin(), "badmetric")
    try:
        assert "linear" not in host.problems  # the registrations run here
        [info] = [i for i in host.errors() if i.name == "badmetric"]
        assert "invalid model 'linear': metric name 'loss\\n'" in str(info.error)
    finally:
        host.unregister("badmetric")
