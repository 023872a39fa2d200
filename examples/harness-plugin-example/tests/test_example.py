"""The example plugin's own tests, written with harness's pytest fixtures.

``harness_host`` loads only the plugins named by ``harness_plugins`` in
pyproject.toml (this package and the built-ins), so other plugins installed on the
machine never leak in. The conformance suite runs separately::

    pytest --harness-conformance=harness-plugin-example
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from harness_plugin_example import Lion

from harness.plugins import PluginHost


def test_the_entry_point_registers_both(harness_host: PluginHost) -> None:
    for owner in (harness_host.problems.owner("digits"), harness_host.optimizers.owner("lion")):
        assert (owner.name, owner.distribution) == ("example", "harness-plugin-example")
    assert harness_host.errors() == []


def test_lion_moves_each_weight_by_lr_times_a_sign() -> None:
    w = torch.zeros(4, requires_grad=True)
    opt = Lion([w], lr=0.1, betas=(0.9, 0.99))
    w.grad = torch.tensor([2.0, -0.5, 0.0, 1e-6])
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([-0.1, 0.1, 0.0, -0.1]))
    # the momentum is updated after the step, with the slower beta2
    assert torch.allclose(opt.state[w]["exp_avg"], 0.01 * w.grad)


def test_lion_trains_digits(harness_run_cell: Callable[..., Any]) -> None:
    result = harness_run_cell("digits", "lion", steps=150, windows=5)
    assert result.status == "ok", result.error
    assert result.summary["test_accuracy"] > 0.85
    assert result.summary["data_source"] == "sklearn-digits"


def test_digits_runs_with_a_builtin_optimizer(harness_run_cell: Callable[..., Any]) -> None:
    result = harness_run_cell("digits", "adam", steps=60, windows=3,
                              params={"hidden": 32, "activation": "tanh"})
    assert result.status == "ok", result.error
    assert dict(result.cell.params) == {"hidden": 32, "activation": "tanh"}


def test_digits_step_speed(benchmark: Any, harness_cell: Callable[..., Any]) -> None:
    """Run with --benchmark-enable (and --benchmark-autosave) to time it."""
    timing = harness_cell("digits", "lion", steps=20, rounds=3, warmup_rounds=1)
    assert timing.samples_per_round == 20 * 64
