"""What a plugin hands harness is checked when it is built or registered, not in every cell."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import harness
from harness import OptimizerSpec, Param, hookimpl
from harness.errors import UsageError
from harness.outcome import EXIT_CELLS_FAILED
from harness.plugins import PluginHost
from harness.registry import OptimizerRegistry, ProblemRegistry
from harness.testing.conformance import check_optimizer

ROOT = Path(__file__).parent.parent


# -- Param: only what a grid file can spell ------------------------------------------------
@pytest.mark.parametrize(("default", "words"), [
    (Path("/tmp"), "PosixPath"),
    (None, "NoneType"),
    ([8, 8], "use a tuple"),
    ({"a": 1}, "dict"),
    ((1, [2]), "a tuple of booleans, numbers or strings"),
    ((1, None), "a tuple of booleans, numbers or strings"),
    (float("nan"), "finite"),
])
def test_param_rejects_defaults_a_grid_file_cannot_spell(default: Any, words: str) -> None:
    with pytest.raises((TypeError, ValueError), match=re.escape(words)) as info:
        Param("odd", default)
    assert "Param 'odd'" in str(info.value)


def test_param_rejects_choices_of_another_type() -> None:
    with pytest.raises(TypeError, match=r"Param 'act': choice 3 .* must be a string"):
        Param("act", "relu", choices=("relu", 3))
    with pytest.raises(TypeError, match="choices must be a tuple"):
        Param("act", "relu", choices=["relu", "tanh"])  # type: ignore[arg-type]


def test_param_accepts_the_documented_types() -> None:
    for default in (True, 3, 0.5, "relu", (1, 2), ("a", 1.5, False), ()):
        assert Param("p", default).default == default


def test_param_coerce_is_strict() -> None:
    shape = Param("shape", (1, 2))
    assert shape.coerce([3, 4, 5], where="grid") == (3, 4, 5)
    with pytest.raises(UsageError, match="shape must be a list of booleans, numbers or strings"):
        shape.coerce([[1], [2]], where="grid")
    odd = Param("odd", 1)
    object.__setattr__(odd, "default", Path("/tmp"))  # past the constructor's check
    with pytest.raises(TypeError, match="unsupported type PosixPath"):
        odd.coerce("/tmp", where="grid")


def test_problem_registry_rejects_params_that_are_not_params() -> None:
    class Loose(harness.Problem):
        name = "loose"
        description = "a parameter given as a dict"
        params = ({"name": "width", "default": 3},)  # type: ignore[assignment]

        def build(self, ctx: harness.BuildContext) -> harness.Supervised:
            raise AssertionError("never built")

    with pytest.raises(TypeError, match=r"model 'loose': params must hold harness.Param"):
        ProblemRegistry().add(Loose())


# -- optimizers: cheap checks when registered ----------------------------------------------
def _sgd(params: Any, lr: float = 0.01) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr)


def _no_params(lr: float = 0.01) -> None:
    return None


def _needs_beta(params: Any, beta: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=beta)


@pytest.mark.parametrize(("spec", "words"), [
    (OptimizerSpec("n", 42, {"lr": 0.1}, "x"),  # type: ignore[arg-type]
     "optimizer 'n': factory 42 is not callable"),
    (OptimizerSpec("n", _no_params, {"lr": 0.1}, "x"),  # type: ignore[arg-type]
     "optimizer 'n': factory _no_params(lr) takes no argument for the parameters"),
    (OptimizerSpec("n", torch.optim.SGD, {"lr": 0.1, "momentun": 0.9}, "x"),
     "optimizer 'n': default 'momentun' is not an argument of SGD (did you mean 'momentum'?)"),
    (OptimizerSpec("n", _sgd, {"lr": 0.1, "momentum": 0.9}, "x"),
     "optimizer 'n': default 'momentum' is not an argument of _sgd; it takes: lr"),
    (OptimizerSpec("n", _needs_beta, {}, "x"),
     "optimizer 'n': _needs_beta requires 'beta', and neither it nor the defaults give a value"),
])
def test_broken_optimizer_specs_are_refused_when_registered(spec: OptimizerSpec,
                                                            words: str) -> None:
    with pytest.raises(TypeError) as info:
        OptimizerRegistry().add(spec)
    assert words in str(info.value)


def _anything(params: Any, **hyper: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, **hyper)


def test_a_factory_taking_keywords_declares_its_hyperparameters() -> None:
    registry = OptimizerRegistry()
    with pytest.raises(TypeError) as info:
        registry.add(OptimizerSpec("kw", _anything, {"lr": 0.1, "momentum": 0.5}, "kwargs"))
    assert str(info.value) == (
        "optimizer 'kw': factory _anything takes **hyper, so a misspelt hyperparameter would "
        "pass unnoticed; declare the names it takes: OptimizerSpec(..., "
        "hyperparameters=('lr', 'momentum', ...))")
    registry.add(OptimizerSpec("kw", _anything, {"lr": 0.1, "momentum": 0.5}, "kwargs",
                               hyperparameters=("lr", "momentum", "nesterov")))
    registry.add(OptimizerSpec("sgd", torch.optim.SGD, {"lr": 0.1}, "plain"))
    assert registry.names() == ["kw", "sgd"]
    spec = registry.get("kw")
    assert spec.accepted() == {"lr", "momentum", "nesterov"}
    assert spec.resolve({"nesterov": True})["nesterov"] is True
    with pytest.raises(UsageError, match=r"unknown hyperparameter 'momentun' \(did you mean "
                                         r"'momentum'\?\)"):
        spec.resolve({"momentun": 0.9})


@pytest.mark.parametrize(("spec", "words"), [
    (OptimizerSpec("kw", _anything, {"lr": 0.1, "beta": 0.9}, "x", hyperparameters=("lr",)),
     "default 'beta' is not a declared hyperparameter of _anything; it takes: lr"),
    (OptimizerSpec("sgd", torch.optim.SGD, {}, "x", hyperparameters=("lr", "momentun")),
     "declared hyperparameter 'momentun' is not an argument of SGD (did you mean 'momentum'?)"),
    (OptimizerSpec("kw", _anything, {}, "x", hyperparameters="lr"),
     "hyperparameters must be a collection of argument names"),
    (OptimizerSpec("sgd", torch.optim.SGD, {}, "x", conformance_skip={"descends": ""}),
     "conformance_skip must map check names to reasons"),
])
def test_bad_declarations_are_refused_when_registered(spec: OptimizerSpec, words: str) -> None:
    with pytest.raises(TypeError, match=re.escape(words)):
        OptimizerRegistry().add(spec)


def test_a_class_taking_keywords_takes_its_named_arguments() -> None:
    class Loose(torch.optim.SGD):
        def __init__(self, params: Any, lr: float = 0.1, momentum: float = 0.0,
                     **kwargs: Any) -> None:
            super().__init__(params, lr=lr, momentum=momentum)

    registry = OptimizerRegistry()
    registry.add_torch("loose", Loose, "SGD that swallows keywords", lr=0.1)
    assert registry.get("loose").accepted() == {"lr", "momentum"}


def test_a_factory_returning_no_optimizer_fails_its_cells_clearly(
    host: PluginHost, register_plugin: Any, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.cli import main

    def returns_none(params: Any, lr: float = 0.01) -> dict[str, float]:
        return {"lr": lr}  # a dict of settings, not an optimizer

    class Plugin:
        @hookimpl
        def register_optimizers(self, registry):  # type: ignore[no-untyped-def]
            registry.add(OptimizerSpec("ab-none", returns_none, {"lr": 0.01},  # type: ignore[arg-type]
                                       "returns None"))

    register_plugin(Plugin(), "none-plugin")
    out = tmp_path / "run"
    code = main(["run", "-m", "regression", "-o", "ab-none", "-s", "0", "--steps", "3",
                 "--workers", "0", "--out", str(out), "--quiet"])
    assert code == EXIT_CELLS_FAILED
    [record] = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert record["status"] == "error"
    reason = ("TypeError: optimizer 'ab-none' (registered by an in-process plugin): factory "
              "returns_none returned dict, not a torch.optim.Optimizer")
    assert reason in record["error"]
    seen = capsys.readouterr()
    assert f"regression [activation=relu] ab-none [lr=0.01] cpu seed 0: error: {reason}" \
        in seen.out  # the closing table says why
    assert f"1 error: exit code {EXIT_CELLS_FAILED}" in seen.err


# -- add_torch: the documented short form passes the conformance kit -----------------------
def test_add_torch_without_a_description_gets_one_from_the_class() -> None:
    registry = OptimizerRegistry()
    registry.add_torch("radam", torch.optim.RAdam, lr=0.002)
    spec = registry.get("radam")
    assert spec.description.startswith("torch.optim.RAdam")
    assert spec.defaults == {"lr": 0.002}
    check_optimizer(spec, "metadata")
    registry.add_torch("nadam", torch.optim.NAdam, "NAdam", lr=0.002)
    assert registry.get("nadam").description == "NAdam"


def test_add_torch_wants_an_optimizer_class() -> None:
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer subclass"):
        OptimizerRegistry().add_torch("f", _sgd, lr=0.1)  # type: ignore[arg-type]


# -- what a plugin author imports ----------------------------------------------------------
def test_the_names_a_plugin_author_needs_are_exported() -> None:
    from harness.errors import DuplicateNameError
    from harness.problem import BatchSource, ParamValue
    from harness.registry import ExecutorRegistry

    assert harness.ParamValue is ParamValue
    assert harness.BatchSource is BatchSource
    assert harness.DuplicateNameError is DuplicateNameError
    assert harness.ExecutorRegistry is ExecutorRegistry
    assert {"ParamValue", "BatchSource", "DuplicateNameError", "ExecutorRegistry"} <= set(
        harness.__all__)


def test_the_guides_sample_plugin_is_the_tested_package() -> None:
    """The guide's one-file sample is the package the suite installs, which mypy --strict
    checks."""
    guide = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = guide.split("# A minimal plugin in one file", 1)[1]
    sample = section.split("`harness_sampleplugin/__init__.py`:", 1)[1]
    code = sample.split("```python\n", 1)[1].split("```", 1)[0]
    package = ROOT / "tests/packages/harness-sampleplugin/harness_sampleplugin/__init__.py"
    assert code == package.read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"tests/packages/harness-sampleplugin/harness_sampleplugin"' in pyproject
