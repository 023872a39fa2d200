"""Learning-rate schedules: the built-ins, the grid axes, the curve's lr, resume, roles."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest

import harness
from harness.cell import Cell
from harness.executor import RunOptions
from harness.grid import GridSpec, apply_sets, expand
from harness.plugins import PluginHost
from harness.schedules import ScheduleSpec, warmup_steps
from harness.train.loop import run_cell
from harness.train.lr import GRAPHS_FALLBACK, graphs_fallback
from tests.helpers import interrupted_then_resumed, run_cli, same_curve_but_time


def records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]


@pytest.mark.parametrize("name", ["cosine", "warmup-cosine", "linear", "step", "constant"])
@pytest.mark.parametrize("steps", [1, 2, 7, 100, 1001])
def test_builtin_schedules_reach_their_final_rate_and_are_monotone(
        host: PluginHost, name: str, steps: int) -> None:
    spec = host.schedules.get(name)
    params = spec.resolve({})
    values = [spec.at(i, steps, params) for i in range(steps)]
    assert all(math.isfinite(v) and v >= 0 for v in values)
    w = min(warmup_steps(params.get("warmup", 0), steps), steps - 1)
    after = values[w:]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(after))
    if "final_lr_ratio" in params:
        assert values[-1] == pytest.approx(params["final_lr_ratio"], abs=1e-12)
    if name == "warmup-cosine" and steps >= 100:
        assert values[0] == pytest.approx(1 / w) and max(values) == pytest.approx(1.0)


def expanded(host: PluginHost, *sets: str, spec: GridSpec | None = None) -> list[Cell]:
    spec = spec or GridSpec(models=["regression"], optimizers=["adam"])
    apply_sets(spec, list(sets), host.problems, host.optimizers, host.schedules)
    return list(expand(spec, host.problems, host.optimizers, schedules=host.schedules).cells)


def test_schedules_and_their_parameters_are_grid_axes(host: PluginHost) -> None:
    plain = expanded(host)
    cells = expanded(host, "schedule=constant,warmup-cosine", "warmup-cosine.warmup=0.1,20")
    assert [c.schedule for c in cells] == [None, "warmup-cosine", "warmup-cosine"]
    assert cells[0].key == plain[0].key  # constant: every existing content key unchanged
    assert "schedule" not in cells[0].to_dict()
    assert [dict(c.schedule_params)["warmup"] for c in cells[1:]] == [0.1, 20]
    assert Cell.from_dict(json.loads(cells[1].key)) == cells[1]


def test_a_grid_file_table_sets_a_schedules_parameters(host: PluginHost,
                                                      tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["regression"]\noptimizers = ["sgd"]\nsteps = 12\n'
                    'schedules = ["cosine", "linear"]\n'
                    '[schedule.cosine]\nfinal_lr_ratio = [0.0, 0.1]\n')
    out = tmp_path / "run"
    proc = run_cli("run", str(grid), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    got = sorted((r["cell"]["schedule"]["name"], r["cell"]["schedule"]["params"].get(
        "final_lr_ratio")) for r in recs)
    assert got == [("cosine", 0.0), ("cosine", 0.1), ("linear", 0.0)]
    for r in recs:
        assert r["status"] == "ok"
        assert r["curve"][-1]["lr"] == pytest.approx(
            0.01 * r["cell"]["schedule"]["params"]["final_lr_ratio"])


def test_the_command_line_runs_a_scheduled_cell_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression", "-o", "adam", "--steps", "40",
                   "--set", "schedule=constant,warmup-cosine",
                   "--set", "warmup-cosine.warmup=0.25", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    by = {r["cell"].get("schedule", {}).get("name", "constant"): r for r in records(out)}
    assert "lr" not in by["constant"]["curve"][0]  # curves of unscheduled cells unchanged
    lrs = [row["lr"] for row in by["warmup-cosine"]["curve"]]
    assert lrs[0] < lrs[2] and max(lrs) == pytest.approx(0.01) and lrs[-1] == 0.0


@pytest.mark.parametrize(("flag", "words"), [
    ("schedule=cosin", "unknown schedule 'cosin' (did you mean 'cosine'?)"),
    ("warmup-cosine.warmp=0.1", "unknown parameter 'warmp' (did you mean 'warmup'?)"),
    ("cosine.final_lr_ratio=-1", "final_lr_ratio must be a number >= 0"),
])
def test_bad_schedule_settings_are_one_line_and_exit_2(flag: str, words: str,
                                                       tmp_path: Path) -> None:
    sets = ["--set", flag]
    if not flag.startswith("schedule="):
        sets += ["--set", f"schedule={flag.split('.')[0]}"]
    proc = run_cli("run", "-m", "regression", "-o", "adam", "--steps", "5", *sets,
                   "--out", str(tmp_path / "x"), "--dry-run")
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_settings_for_an_unselected_schedule_are_refused(host: PluginHost) -> None:
    with pytest.raises(harness.UsageError, match="schedule 'cosine': it is not selected"):
        expanded(host, "cosine.final_lr_ratio=0.1")


def test_closure_optimizers_end_a_schedule_that_decays_to_zero(tmp_path: Path) -> None:
    """LBFGS's line search divides by the step size: at lr 0 (the last step of cosine) the
    step is not taken, the loss is still evaluated, and the row counts it."""
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression", "-o", "lbfgs,sam", "--steps", "12", "--windows",
                   "12", "--set", "schedule=cosine", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    by = {r["cell"]["optimizer"]: r for r in records(out)}
    for name, record in by.items():
        assert record["status"] == "ok", (name, record.get("error"))
        assert record["curve"][-1]["lr"] == 0.0 and record["curve"][-2]["lr"] > 0
        assert record["summary"]["zero_lr_steps"] == 1
        assert math.isfinite(record["curve"][-1]["loss"])
        assert record["summary"]["loss_evals"] >= 1
    summary = (out / "summary.csv").read_text()
    assert "zero_lr_steps" in summary.splitlines()[0]


def test_a_closure_step_at_lr_zero_moves_nothing_and_is_counted() -> None:
    import torch

    from harness.optimizer import Capabilities
    from harness.train.steps import drain_loss_evals, drain_zero_lr_steps, take_step, track

    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = torch.optim.LBFGS([w], lr=0.0, line_search_fn="strong_wolfe")
    track(opt, Capabilities(closure=True))
    loss = take_step(opt, lambda: (w ** 2 + w ** 4).sum())
    assert loss.item() == 22.0 and w.tolist() == [1.0, -2.0] and w.grad is None
    assert drain_zero_lr_steps([opt]) == 1 and drain_loss_evals([opt]) == 1
    opt.param_groups[0]["lr"] = 1.0
    take_step(opt, lambda: (w ** 2 + w ** 4).sum())
    assert w.abs().sum().item() < 3.0 and drain_zero_lr_steps([opt]) == 0


def test_resume_from_checkpoint_is_bit_identical_with_warmup_cosine(
        host: PluginHost, tmp_path: Path) -> None:
    problem, adam = host.problems.get("regression"), host.optimizers.get("adam")
    cell = dataclasses.replace(expanded(host, "schedule=warmup-cosine")[0], steps=60, seed=3)
    whole, resumed = interrupted_then_resumed(cell, problem, adam, tmp_path / "ckpt")
    assert resumed.status == "ok" and resumed.summary["resumed_from_step"] == 40
    assert same_curve_but_time(whole, resumed)
    assert [r["lr"] for r in resumed.curve][-1] == 0.0


def test_a_schedule_applies_per_role(host: PluginHost) -> None:
    spec = GridSpec(models=["gan"], optimizers=["adam"], steps=20,
                    roles={"gan": {"discriminator": {"schedule": "constant"}}})
    cell = expanded(host, "schedule=linear", spec=spec)[0]
    assert cell.role_schedules == (("discriminator", "constant"),)
    result = run_cell(cell, host.problems.get("gan"), host.optimizers.get("adam"),
                      RunOptions(windows=4))
    assert result.status == "ok", result.error
    rows = result.curve
    assert "lr.generator" in rows[0] and "lr.discriminator" not in rows[0]
    assert rows[-1]["lr.generator"] == 0.0
    both = expanded(host, "schedule=linear",
                    spec=GridSpec(models=["gan"], optimizers=["adam"], steps=20))[0]
    rows = run_cell(both, host.problems.get("gan"), host.optimizers.get("adam"),
                    RunOptions(windows=4)).curve
    assert rows[-1]["lr.generator"] == rows[-1]["lr.discriminator"] == 0.0


ROLE_SCHEDULE = """\
models = ["gan"]
optimizers = ["adam"]
steps = 20
schedules = ["linear"]

[model.gan.role.discriminator]
schedule = "cosine"
cosine.final_lr_ratio = 0.5
"""


def test_a_roles_own_schedule_takes_its_own_parameters(tmp_path: Path) -> None:
    """``NAME.KEY = VALUE`` next to ``schedule = "NAME"`` in a role's table, as ``--set
    NAME.KEY=VALUE`` and ``[schedule.NAME]`` spell it for the cell's schedule."""
    grid = tmp_path / "grid.toml"
    grid.write_text(ROLE_SCHEDULE)
    out = tmp_path / "run"
    proc = run_cli("run", str(grid), "-s", "0", "--windows", "4", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (record,) = records(out)
    assert record["cell"]["schedule"] == {
        "name": "linear", "params": {"final_lr_ratio": 0.0},
        "roles": {"discriminator": "cosine"},
        "role_params": {"discriminator": {"final_lr_ratio": 0.5}}}
    last = record["curve"][-1]
    assert last["lr.generator"] == 0.0
    assert last["lr.discriminator"] == pytest.approx(0.5 * record["curve"][0]["lr.discriminator"])
    assert Cell.from_dict(record["cell"]).key == json.dumps(
        record["cell"], sort_keys=True, separators=(",", ":"))
    assert "discriminator:cosine.final_lr_ratio=0.5" in Cell.from_dict(record["cell"]).describe(
        with_hyper=True)
    # Without the parameters, the role's cosine decays to its default 0, and the key of such
    # a cell is what it was before roles could take parameters (no "role_params").
    plain = tmp_path / "plain.toml"
    plain.write_text(ROLE_SCHEDULE.replace("cosine.final_lr_ratio = 0.5\n", ""))
    listed = run_cli("run", str(plain), "-s", "0", "--dry-run")
    assert listed.returncode == 0 and "discriminator:schedule=cosine" in listed.stdout
    (cell,) = expanded_file(plain)
    assert cell.role_schedule_params == () and "role_params" not in cell.to_dict()["schedule"]


def expanded_file(path: Path) -> list[Cell]:
    from harness.grid import apply_toml, load_grid_file
    from harness.plugins import get_host

    host = get_host()
    spec = GridSpec()
    apply_toml(spec, load_grid_file(path), str(path))
    return list(expand(spec, host.problems, host.optimizers, schedules=host.schedules).cells)


@pytest.mark.parametrize(("table", "words"), [
    ('schedule = "cosine"\ncosine.final_lr = 0.5', "unknown parameter 'final_lr' (did you mean "
                                                     "'final_lr_ratio'?)"),
    ('schedule = "cosine"\nlinear.final_lr_ratio = 0.5', "the role's schedule is 'cosine'"),
    ("cosine.final_lr_ratio = 0.5", "add schedule = 'cosine' to the same table"),
    ('schedule = "cosine"\ncosine.final_lr_ratio = -1', "final_lr_ratio must be a number >= 0"),
    ('schedule = "cosine"\ncosine.final_lr_ratio = [0.1, 0.5]', "a number >= 0"),
])
def test_bad_role_schedule_parameters_are_one_line_and_exit_2(tmp_path: Path, table: str,
                                                               words: str) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["gan"]\nsteps = 5\n[model.gan.role.discriminator]\n' + table)
    proc = run_cli("run", str(grid), "--dry-run")
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_cuda_graphs_fall_back_for_a_scheduled_cell(host: PluginHost) -> None:
    """The decision, on any machine (tests/test_gpu.py runs it on a GPU)."""
    cell = expanded(host, "schedule=cosine")[0]
    on_gpu = dataclasses.replace(cell, device="cuda:0")
    graphs = RunOptions(cuda_graphs=True)
    assert graphs_fallback(on_gpu, graphs) == GRAPHS_FALLBACK
    assert graphs_fallback(on_gpu, RunOptions()) is None
    assert graphs_fallback(cell, graphs) is None  # on the CPU graphs never apply
    plain = dataclasses.replace(on_gpu, schedule=None, schedule_params=())
    assert graphs_fallback(plain, graphs) is None


def test_a_plugin_registers_a_schedule(host: PluginHost, register_plugin: Any) -> None:
    def halves(step: int, steps: int, at: float = 0.5) -> float:
        return 1.0 if step < at * steps else 0.5

    class Plugin:
        @harness.hookimpl
        def register_schedules(self, registry: harness.ScheduleRegistry) -> None:
            registry.add(ScheduleSpec("halves", halves, {"at": 0.5}, "half-way, halve"))

    register_plugin(Plugin(), "halves-plugin")
    assert host.schedules.owner("halves").name == "halves-plugin"
    cell = expanded(host, "schedule=halves")[0]
    result = run_cell(dataclasses.replace(cell, steps=20), host.problems.get("regression"),
                      host.optimizers.get("adam"), RunOptions(windows=4))
    lrs = [r["lr"] for r in result.curve]
    assert lrs[0] == 0.01 and lrs[-1] == 0.005 and set(lrs) == {0.01, 0.005}


def test_a_multiplier_that_cannot_be_called_is_refused() -> None:
    registry = harness.ScheduleRegistry()
    with pytest.raises(TypeError, match="cannot be called"):
        registry.add(ScheduleSpec("bad", lambda step: 1.0, {}, "takes no steps"))


def test_the_report_labels_schedules_and_capabilities_and_draws_the_rates(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", "-m", "regression", "-o", "adam,lbfgs", "--steps", "20",
                   "--set", "schedule=constant,cosine", "--set", "cosine.final_lr_ratio=0.1",
                   "--out", str(out), "--quiet")  # LBFGS divides by its lr: not down to 0
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["optimizers"]["lbfgs"]["capabilities"] == ["closure"]
    assert manifest["optimizers"]["adam"]["capabilities"] == []
    assert "cosine" in manifest["schedules"]
    from harness.report.model import ReportRun

    run = ReportRun.load(out)
    assert set(run.arms()) == {"adam (schedule=constant)",
                               "adam (schedule=cosine(final_lr_ratio=0.1))",
                               "lbfgs [closure] (schedule=constant)",
                               "lbfgs [closure] (schedule=cosine(final_lr_ratio=0.1))"}
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    html = next(out.glob("**/*.html")).read_text()
    assert "Learning rate" in html and "lbfgs [closure]" in html
