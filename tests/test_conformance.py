"""The conformance kit: the checks, the suite as authors run it, and the fixtures.

The suite is run the way a plugin author runs it: the example package (and a
deliberately non-conforming one) pip-installed into a private directory,
discovered through its entry point, and pytest started in a subprocess with
``--harness-conformance``. Outcomes are read from pytest's JUnit XML.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from harness import BuildContext, Capabilities, OptimizerSpec, Param, Problem, Supervised, Target
from harness.errors import UsageError
from harness.plugins import PluginHost
from harness.testing.conformance import (
    OPTIMIZER_CHECKS,
    PROBLEM_CHECKS,
    SCHEDULE_CHECKS,
    CheckContext,
    ConformanceFailure,
    ConformanceSkip,
    Settings,
    check_optimizer,
    check_problem,
)
from harness.testing.selection import select
from tests.helpers import PACKAGES, outer_pytest_env, pip_install

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "harness-plugin-example"
BAD = PACKAGES / "harness-badconformance"


# -- the checks, in process ------------------------------------------------------------
class Line(Problem):
    """A conforming problem; subclasses break one thing each."""

    name = "line"
    description = "y = 2x - 1 with one linear unit"
    batch_size = 16
    steps = 50
    metrics = ("test_loss",)
    target = Target("test_loss", 0.01)
    params = (Param("noise", 0.0),)

    def data(self, ctx: BuildContext) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(128, 1, generator=ctx.cpu_generator()) * 2 - 1
        return x, 2 * x - 1 + float(ctx.params["noise"]) * torch.randn(x.shape)

    def metrics_of(self, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        return {"test_loss": float(nn.functional.mse_loss(m(x), y))}

    def build(self, ctx: BuildContext) -> Supervised:
        x, y = self.data(ctx)
        model = nn.Linear(1, 1)
        return Supervised(model=model, loss_fn=nn.functional.mse_loss, inputs=x, targets=y,
                          evaluate=lambda m: self.metrics_of(m, x, y))


def failure(problem: Problem, check: str) -> str:
    with pytest.raises(ConformanceFailure) as info:
        check_problem(problem, check, CheckContext(Settings(descent_steps=20)))
    assert info.value.check == check and info.value.name == problem.name
    return str(info.value)


@pytest.mark.parametrize("check", list(PROBLEM_CHECKS))
def test_a_conforming_problem_passes_every_check(check: str) -> None:
    check_problem(Line(), check, CheckContext(Settings(descent_steps=20)))


@pytest.mark.parametrize(("attrs", "words"), [
    ({"name": "Bad Name"}, "invalid model name"),
    ({"description": ""}, "description is empty"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"target": Target("accuracy", 0.9, "max")}, "target metric 'accuracy' is neither"),
    ({"params": (Param("act", "gelu", choices=("relu", "tanh")),)}, "'gelu' is rejected"),
    ({"roles": ()}, "roles must be a non-empty tuple"),
    ({"params": (Param("test_loss", 0.5),)}, "parameter 'test_loss' has a metric's name"),
    ({"conformance_skip": {"los_decreases": "typo"}}, "unknown check 'los_decreases'"),
])
def test_metadata_failures_say_what_is_wrong(attrs: dict[str, Any], words: str) -> None:
    problem = type("Broken", (Line,), attrs)()
    message = failure(problem, "metadata")
    assert message.startswith("conformance check 'metadata' failed for problem")
    assert words in message


def test_metadata_checks_target_for_at_each_choice() -> None:
    """A target that depends on a parameter is checked for each of its choices."""
    class PerLevel(Line):
        params = (*Line.params, Param("level", "easy", choices=("easy", "hard")))

        def target_for(self, params: Mapping[str, Any]) -> Target | None:
            metric = "test_loss" if params["level"] == "easy" else "test_acc"
            return Target(metric, 0.05, "min")

    message = failure(PerLevel(), "metadata")
    assert "target_for at level='hard': metric 'test_acc' is neither a declared metric" \
        in message

    class Raises(Line):
        def target_for(self, params: Mapping[str, Any]) -> Target | None:
            raise KeyError("env")

    assert "target_for raised at the defaults: KeyError" in failure(Raises(), "metadata")


def test_roles_must_match_the_parameter_groups() -> None:
    problem = type("TwoRoles", (Line,), {"roles": ("generator", "discriminator")})()
    assert "parameter_groups() has roles ['model']" in failure(problem, "builds")


def test_evaluate_must_return_exactly_the_declared_metrics() -> None:
    class Extra(Line):
        def metrics_of(self, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
            return {"test_loss": 0.5, "accuracy": 1.0}

    class AsTensor(Line):
        def metrics_of(self, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
            return {"test_loss": nn.functional.mse_loss(m(x), y)}

    class Nan(Line):
        def metrics_of(self, m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
            return {"test_loss": math.nan}

    assert "undeclared ['accuracy']" in failure(Extra(), "evaluate_metrics")
    assert "is a tensor; return float(value)" in failure(AsTensor(), "evaluate_metrics")
    assert "metric 'test_loss' is nan" in failure(Nan(), "metrics_finite")
    check_problem(Nan(), "evaluate_metrics")  # a float, just not finite: another check


def test_unseeded_data_is_not_deterministic() -> None:
    class Unseeded(Line):
        def data(self, ctx: BuildContext) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.from_numpy(np.random.default_rng().random((128, 1), dtype=np.float32))
            return x, 2 * x - 1

    assert "different losses at step 1" in failure(Unseeded(), "deterministic")


def test_a_frozen_model_does_not_train() -> None:
    class Frozen(Line):
        def build(self, ctx: BuildContext) -> Supervised:
            built = super().build(ctx)
            model = built.model

            def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return nn.functional.mse_loss(out.detach(), y) + 0 * sum(
                    p.sum() for p in model.parameters())

            built.loss_fn = loss_fn
            return built

    assert "left every parameter of group(s) ['model'] unchanged" in failure(Frozen(), "trains")
    assert "not below the first" in failure(Frozen(), "loss_decreases")


def test_an_opt_out_is_a_skip_with_its_reason() -> None:
    problem = type("OptsOut", (Line,), {"conformance_skip": {"loss_decreases": "adversarial"}})()
    with pytest.raises(ConformanceSkip, match="opts out of 'loss_decreases': adversarial"):
        check_problem(problem, "loss_decreases")
    check_problem(problem, "metadata")  # metadata cannot be skipped, and the skip is valid


class SignOnly(torch.optim.Optimizer):
    def __init__(self, params: Any, lr: float = 0.01, ignore_lr: bool = False) -> None:
        super().__init__(params, {"lr": lr, "ignore_lr": ignore_lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr = 0.01 if group["ignore_lr"] else group["lr"]
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad.sign(), alpha=-lr)


def reference() -> CheckContext:
    return CheckContext(reference_problems=(Line(),))


@pytest.mark.parametrize("check", list(OPTIMIZER_CHECKS))
def test_a_conforming_optimizer_passes_every_check(check: str) -> None:
    spec = OptimizerSpec("sign", SignOnly, {"lr": 0.01}, "sign of the gradient")
    if check == "capabilities":  # it declares none
        with pytest.raises(ConformanceSkip):
            check_optimizer(spec, check, reference())
        return
    check_optimizer(spec, check, reference())


def test_an_optimizer_that_ignores_lr_fails_honours_lr() -> None:
    spec = OptimizerSpec("blind", SignOnly, {"lr": 0.01, "ignore_lr": True}, "ignores lr")
    with pytest.raises(ConformanceFailure, match=r"'honours_lr' failed for optimizer 'blind': "
                                                 r"with lr=0 one step still moved"):
        check_optimizer(spec, "honours_lr")


def test_optimizer_metadata_and_build_failures() -> None:
    unknown = OptimizerSpec("sgd2", torch.optim.SGD, {"lr": 0.1, "nesterov_": True}, "sgd")
    with pytest.raises(ConformanceFailure, match=r"'sgd2': default 'nesterov_' is not an argument "
                                                    r"of SGD \(did you mean 'nesterov'\?\)"):
        check_optimizer(unknown, "metadata")
    with pytest.raises(ConformanceFailure, match="description is empty"):
        check_optimizer(OptimizerSpec("sgd3", torch.optim.SGD, {"lr": 0.1}), "metadata")

    def not_an_optimizer(params: Any, lr: float = 0.1) -> object:
        return object()

    spec = OptimizerSpec("fake", not_an_optimizer, {"lr": 0.1}, "returns junk")  # type: ignore[arg-type]
    with pytest.raises(ConformanceFailure, match=r"not a torch\.optim\.Optimizer"):
        check_optimizer(spec, "builds")


def test_lbfgs_needs_a_closure_and_says_so() -> None:
    spec = OptimizerSpec("lbfgs", torch.optim.LBFGS, {"lr": 1.0}, "L-BFGS")
    with pytest.raises(ConformanceFailure, match=r"without a closure unless the spec declares "
                                                 r"capabilities=harness\.Capabilities"):
        check_optimizer(spec, "step_changes_parameters")


@pytest.mark.parametrize("name", ["lbfgs", "sam"])
@pytest.mark.parametrize("check", list(OPTIMIZER_CHECKS))
def test_closure_optimizers_pass_every_check(host: PluginHost, name: str, check: str) -> None:
    """Declared closure optimizers are given their closure by every check."""
    try:
        check_optimizer(host.optimizers.get(name), check, reference())
    except ConformanceSkip as skip:
        assert check in ("builds", "honours_lr") and name == "lbfgs", skip


def test_a_closure_optimizer_that_ignores_its_closure_fails_capabilities() -> None:
    class NoClosure(torch.optim.SGD):
        def step(self, closure: Any = None) -> Any:  # type: ignore[override]
            return super().step()

    spec = OptimizerSpec("noclosure", NoClosure, {"lr": 0.1}, "says closure, never calls it",
                         capabilities=Capabilities(closure=True))
    with pytest.raises(ConformanceFailure, match="never called the closure"):
        check_optimizer(spec, "capabilities")


def test_a_plain_optimizer_skips_the_capability_check() -> None:
    with pytest.raises(ConformanceSkip, match="declares no capability"):
        check_optimizer(OptimizerSpec("sgd", torch.optim.SGD, {"lr": 0.1}, "sgd"),
                        "capabilities")


def test_a_mode_optimizer_passes_with_the_real_schedulefree() -> None:
    import schedulefree

    spec = OptimizerSpec("sf", schedulefree.AdamWScheduleFree, {"lr": 0.01}, "schedule-free",
                         capabilities=Capabilities(modes=True))
    for check in OPTIMIZER_CHECKS:
        if check != "problem_parameter_groups":
            check_optimizer(spec, check, reference())


def test_a_first_step_that_makes_no_update_is_not_an_ignored_lr() -> None:
    """ADOPT's first step only initialises its second moment: one step moves nothing at
    any lr, which the kit called "the learning rate is ignored"."""
    import pytorch_optimizer

    spec = OptimizerSpec("adopt", pytorch_optimizer.ADOPT, {"lr": 1e-3}, "ADOPT")
    check_optimizer(spec, "honours_lr")


def test_a_round_trip_on_nan_weights_says_the_weights_are_nan() -> None:
    class Diverges(Line):
        def build(self, ctx: BuildContext) -> Supervised:
            built = super().build(ctx)
            built.loss_fn = lambda out, y: nn.functional.mse_loss(out, y) * math.nan
            return built

    text = failure(Diverges(), "state_dict_round_trip")
    assert "the weights are NaN or infinite" in text and "model.weight" in text
    assert "outside the state_dict" not in text


def test_optimizers_are_tried_on_every_role_of_the_reference_problems() -> None:
    def no_bias(params: Any, lr: float = 0.01) -> torch.optim.Optimizer:
        params = list(params)
        if any(p.dim() == 1 for p in params):
            raise ValueError("bias vectors are not supported")
        return torch.optim.SGD(params, lr=lr)

    spec = OptimizerSpec("no-bias", no_bias, {"lr": 0.01}, "rejects 1-D parameters")
    with pytest.raises(ConformanceFailure, match="bias vectors are not supported"):
        check_optimizer(spec, "problem_parameter_groups", reference())


def test_selection_patterns(host: PluginHost) -> None:
    chosen = select(["builtin-optimizers"], host=host)
    assert [p.name for p in chosen.plugins] == ["builtin-optimizers"]
    assert chosen.problems == () and "adam" in [o.name for o in chosen.optimizers]
    # optimizers are still tried on the built-in problems' parameter groups
    assert "cnn" in [p.name for p in chosen.context.reference_problems]
    assert {p.distribution for p in select(["harness"], host=host).plugins} == {"harness"}
    with pytest.raises(UsageError, match="matches no harness plugin"):
        select(["harness-no-such-plugin"], host=host)


# -- the plugin is cheap and present -------------------------------------------------
def test_the_pytest_plugin_is_an_installed_entry_point() -> None:
    eps = {ep.name: ep.value for ep in md.entry_points(group="pytest11")}
    assert eps.get("harness") == "harness.testing.plugin", (
        "the pytest11 entry point is missing: reinstall with pip install -e .")


def test_importing_the_pytest_plugin_imports_no_torch() -> None:
    code = ("import sys, harness.testing.plugin; "
            "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


# -- the suite as an author runs it, in a subprocess -----------------------------------
@pytest.fixture(scope="module")
def kit_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package and the non-conforming one, pip-installed into a private dir."""
    target = tmp_path_factory.mktemp("kit-site")
    for source in (EXAMPLE, BAD):
        pip_install(source, target, tmp_path_factory.mktemp("build"))
    return target


def run_pytest(site: Path, plugins: str, *args: str, cwd: Path,
               timeout: float = 900) -> tuple[subprocess.CompletedProcess[str], Outcomes]:
    """pytest in a fresh interpreter that sees ``site``; ``-P`` keeps cwd off sys.path,
    so packages come from their installed copies."""
    xml = cwd / f"junit-{os.getpid()}-{abs(hash(args))}.xml"
    # the tree under test stays importable (a checkout run with PYTHONPATH set)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = outer_pytest_env(PYTHONPATH=path, HARNESS_PLUGINS=plugins)
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         f"--junitxml={xml}", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )
    outcomes = Outcomes.read(xml) if xml.exists() else Outcomes({})
    xml.unlink(missing_ok=True)
    return proc, outcomes


class Outcomes:
    """Test name (``test_x[param]``) -> (outcome, message) from JUnit XML."""

    def __init__(self, results: Mapping[str, tuple[str, str]]) -> None:
        self.results = dict(results)

    @classmethod
    def read(cls, path: Path) -> Outcomes:
        results: dict[str, tuple[str, str]] = {}
        for case in ET.parse(path).iter("testcase"):
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome, message = child.tag, child.get("message", "") + (child.text or "")
            results[case.get("name", "")] = (outcome, message)
        return cls(results)

    def named(self, outcome: str) -> dict[str, str]:
        return {n: m for n, (o, m) in self.results.items() if o == outcome}


def expected_names(problems: list[str], optimizers: list[str]) -> set[str]:
    return ({f"test_problem_{c}[{p}]" for c in PROBLEM_CHECKS for p in problems}
            | {f"test_optimizer_{c}[{o}]" for c in OPTIMIZER_CHECKS for o in optimizers})


@pytest.mark.slow
def test_suite_passes_on_the_builtins_and_the_example(kit_site: Path, host: PluginHost) -> None:
    """What the tox ``plugin`` env runs: the example's own tests plus the suite."""
    proc, outcomes = run_pytest(
        kit_site, "harness,harness-plugin-example", "tests",
        "--harness-conformance=harness,harness-plugin-example", cwd=EXAMPLE,
        timeout=600,  # at load 12 on the 2-core machine this test took 287 s (default: 300)
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    builtins = sorted(host.problems.names())
    expected = expected_names([*builtins, "digits"], [*sorted(host.optimizers.names()), "lion"])
    assert expected <= set(outcomes.results), sorted(expected - set(outcomes.results))[:10]
    assert "test_plugin_loads[example]" in outcomes.results
    assert outcomes.named("failure") == {} and outcomes.named("error") == {}
    # Every skip is an opt-out with its reason (or an optimizer without an lr, or without a
    # capability to check).
    for name, message in outcomes.named("skipped").items():
        assert "opts out of" in message or "takes no lr" in message \
            or "declares no capability" in message \
            or "supports one parameter group only" in message \
            or "a line search in its closure steps" in message \
            or "declares no warm-up" in message, (name, message)
    # The built-in schedules were checked too (issue 19).
    assert {f"test_schedule_{c}[{n}]" for c in SCHEDULE_CHECKS
            for n in host.schedules.names()} <= set(outcomes.results)
    # The example's own tests ran too, with the fixtures.
    assert outcomes.results["test_lion_trains_digits"][0] == "passed"
    assert outcomes.results["test_digits_step_speed"][0] == "passed"


@pytest.mark.slow
def test_a_broken_plugin_fails_the_suite_naming_the_check(kit_site: Path,
                                                          tmp_path: Path) -> None:
    proc, outcomes = run_pytest(kit_site, "harness,harness-badconformance",
                                "--harness-conformance=harness-badconformance", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    failed = outcomes.named("failure")
    assert set(failed) == {"test_problem_state_dict_round_trip[leaky-state]",
                           "test_optimizer_honours_lr[lr-blind]"}, failed
    assert ("conformance check 'state_dict_round_trip' failed for problem 'leaky-state': "
            "outputs differ") in failed["test_problem_state_dict_round_trip[leaky-state]"]
    assert ("conformance check 'honours_lr' failed for optimizer 'lr-blind'"
            in failed["test_optimizer_honours_lr[lr-blind]"])
    skipped = {k: v for k, v in outcomes.named("skipped").items()
               if "declares no capability" not in v and "register no schedules" not in v}
    assert list(skipped) == ["test_problem_loss_decreases[two-roles]"]
    assert "two-roles opts out to show how a skip is reported" in next(iter(skipped.values()))
    # The two-role Task passed everything else, state_dict round trip included.
    assert outcomes.results["test_problem_state_dict_round_trip[two-roles]"][0] == "passed"
    assert "failed for problem 'leaky-state'" in proc.stdout  # the terminal says it too


@pytest.mark.slow
def test_a_pattern_matching_nothing_is_a_usage_error(kit_site: Path, tmp_path: Path) -> None:
    proc, _ = run_pytest(kit_site, "harness", "--harness-conformance=harness-plugin-exampel",
                         cwd=tmp_path, timeout=120)
    assert proc.returncode == 4  # pytest's usage error
    assert "matches no harness plugin" in proc.stderr


# -- the fixtures ----------------------------------------------------------------------
@pytest.mark.harness_plugins("builtin-mlp", "builtin-optimizers")
def test_harness_host_loads_only_the_marked_plugins(harness_host: PluginHost) -> None:
    from harness.plugins import get_host

    assert get_host() is harness_host
    assert set(harness_host.problems.names()) == {"regression", "regression-sequential",
                                                  "classification"}
    assert os.environ["HARNESS_PLUGINS"] == "builtin-mlp,builtin-optimizers"


@pytest.mark.harness_plugins("harness")
def test_harness_run_cell_returns_the_record(harness_run_cell: Callable[..., Any]) -> None:
    result = harness_run_cell("regression", "sgd", steps=30, windows=3, seed=2,
                              params={"activation": "tanh"}, hyper={"lr": 0.05})
    assert result.status == "ok", result.error
    assert (result.cell.seed, dict(result.cell.params), dict(result.cell.hyper)) == (
        2, {"activation": "tanh"}, {"lr": 0.05})
    assert len(result.curve) >= 3 and math.isfinite(result.summary["test_loss"])


@pytest.mark.harness_plugins("harness")
def test_harness_run_cell_skips_a_missing_device(harness_run_cell: Callable[..., Any]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(pytest.skip.Exception, match="'cuda' is not available"):
        harness_run_cell("regression", device="cuda")


@pytest.mark.harness_plugins("harness")
def test_harness_cell_runs_once_under_benchmark_disable(
    benchmark: Any, harness_cell: Callable[..., Any]
) -> None:
    timing = harness_cell("classification", "adam", steps=5, rounds=3)
    assert timing.samples_per_round == 5 * 200 and timing.seconds == []  # untimed


SPEED_TEST = '''
import pytest

@pytest.mark.harness_plugins("harness")
def test_speed(benchmark, harness_cell):
    timing = harness_cell("regression", "adam", steps=10, rounds=4, warmup_rounds=2)
    assert len(timing.seconds) == 4
'''


@pytest.mark.slow
def test_harness_cell_is_timed_by_pytest_benchmark(tmp_path: Path) -> None:
    (tmp_path / "test_speed.py").write_text(SPEED_TEST)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--benchmark-enable",
         f"--benchmark-json={out}", "test_speed.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=900, env=outer_pytest_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    [bench] = json.loads(out.read_text())["benchmarks"]
    assert bench["stats"]["rounds"] == 4
    info = bench["extra_info"]
    assert (info["problem"], info["optimizer"], info["steps_per_round"]) == (
        "regression", "adam", 10)
    assert info["samples_per_round"] == 10 * 100 and info["samples_per_s"] > 0
