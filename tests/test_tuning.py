"""Tuning runs (docs/tuning.md): search spaces, ``[tune]`` and ``[problems.NAME]`` in grid
files, and real tuning runs (real Optuna samplers, real training on small problems)."""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.cell import Cell
from harness.cli import main
from harness.errors import UsageError
from harness.grid import GridSpec, apply_toml, expand, load_grid_file
from harness.plugins import PluginHost
from harness.space import SearchSpace, element
from tests.helpers import pythonpath, run_cli, wait_for

TINY = ["-m", "regression,classification", "-o", "sgd,adam", "--steps", "40",
        "--workers", "0", "--quiet"]


def _tuning(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "tuning.json").read_text("utf-8"))
    return data


def _best(out: Path) -> list[dict[str, str]]:
    with (out / "best_configs.csv").open() as f:
        return list(csv.DictReader(f))


# -- search spaces ------------------------------------------------------------------------
def test_a_space_maps_values_to_its_scale_and_flags_edges() -> None:
    lr = SearchSpace.log(1e-4, 1.0)
    assert lr.unit(1e-2) == pytest.approx(0.5) and lr.at(0.5) == pytest.approx(1e-2)
    assert lr.edge(1.5e-4) == "low" and lr.edge(0.5) == "high" and lr.edge(1e-2) is None
    beta = SearchSpace.one_minus_log(0.5, 0.999)
    assert beta.unit(beta.at(0.3)) == pytest.approx(0.3)
    wide = lr.widened("high")
    assert wide is not None and wide.low == 1e-4 and wide.high == pytest.approx(100.0)
    assert beta.widened("high") is not None and beta.widened("high").high < 1  # type: ignore[union-attr]
    assert SearchSpace.choice("relu", "tanh").edge("relu") is None
    with pytest.raises(ValueError, match="log scale needs low > 0"):
        SearchSpace.log(0.0, 1.0)
    with pytest.raises(UsageError, match=r"tune\.space\.lr: unknown key .hi."):
        SearchSpace.from_dict({"low": 1, "hi": 2}, "tune.space.lr")


def test_the_built_in_spaces_hold_the_tutorials_values(host: PluginHost) -> None:
    spaced = 0
    for opt in host.optimizers:
        for name, space in opt.space.items():
            base, index = element(name)
            default = opt.defaults.get(base, inspect.signature(opt.factory)
                                       .parameters[base].default)  # torch's own (eps)
            default = default if index is None else default[index]  # betas[0]
            assert space.contains(default), (opt.name, name)
            spaced += 1
    assert spaced >= 10
    assert host.optimizers.get("momentum").space["momentum"].scale == "one-minus-log"
    assert host.schedules.get("warmup-cosine").space["warmup"].contains(0.05)


def test_harness_list_shows_the_spaces(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    sgd = next(o for o in data["optimizers"] if o["name"] == "sgd")
    assert sgd["space"] == {"lr": {"scale": "log", "low": 1e-4, "high": 1.0}}
    cosine = next(s for s in data["schedules"] if s["name"] == "warmup-cosine")
    assert cosine["space"]["warmup"] == {"scale": "linear", "low": 0.0, "high": 0.3}
    assert main(["list", "--verbose"]) == 0
    assert "search space: lr=log[0.0001, 1]" in capsys.readouterr().out


# -- grid files ---------------------------------------------------------------------------
def test_problems_tables_set_an_optimizer_per_problem(host: PluginHost) -> None:
    spec = GridSpec()
    apply_toml(spec, {"models": ["regression", "classification"], "optimizers": ["sgd"],
                      "optimizer": {"sgd": {"lr": 0.02}},
                      "problems": {"regression": {"sgd": {"lr": 0.05}, "steps": 7}}}, "g")
    cells = expand(spec, host.problems, host.optimizers, schedules=host.schedules).cells
    lrs = {(c.problem, dict(c.hyper)["lr"], c.steps) for c in cells}
    assert lrs == {("regression", 0.05, 7), ("classification", 0.02, 200)}


def test_a_problems_table_for_an_unknown_optimizer_is_one_line(tmp_path: Path) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('models = ["regression"]\n[problems.regression]\nsgdd.lr = 0.1\n')
    done = run_cli("run", str(grid), "--dry-run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "[problems.regression] sgdd" in done.stderr and "'sgd'" in done.stderr


def test_problems_tables_set_a_schedule_per_problem(host: PluginHost) -> None:
    spec = GridSpec()
    apply_toml(spec, {"models": ["regression", "classification", "cnn"],
                      "optimizers": ["sgd"], "schedules": ["cosine"],
                      "schedule": {"cosine": {"final_lr_ratio": 0.1}},
                      "problems": {"regression": {"schedule": "warmup-cosine",
                                                  "warmup-cosine": {"warmup": 0.2}},
                                   "classification": {"cosine": {"final_lr_ratio": 0.3}}}},
               "g")
    cells = expand(spec, host.problems, host.optimizers, schedules=host.schedules).cells
    got = {c.problem: (c.schedule, dict(c.schedule_params)) for c in cells}
    assert got == {"regression": ("warmup-cosine", {"warmup": 0.2, "final_lr_ratio": 0.0}),
                   "classification": ("cosine", {"final_lr_ratio": 0.3}),
                   "cnn": ("cosine", {"final_lr_ratio": 0.1})}


def test_set_schedule_overrides_a_problems_own_schedule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('models = ["regression"]\noptimizers = ["sgd"]\n[problems.regression]\n'
                    'schedule = "cosine"\n')
    assert main(["run", str(grid), "--dry-run"]) == 0
    assert "schedule=cosine " in capsys.readouterr().out
    assert main(["run", str(grid), "--dry-run", "--set", "schedule=linear"]) == 0
    assert "schedule=linear " in capsys.readouterr().out


@pytest.mark.parametrize(("lines", "message"), [
    ('schedule = "warmup-cosin"', "[problems.regression] schedule: unknown schedule "
     "'warmup-cosin' (did you mean 'warmup-cosine'?)"),
    ("schedule = 3", "[problems.regression] schedule: expected schedule names, got 3"),
    ("warmup-cosin.warmup = 0.1", "[problems.regression] warmup-cosin: unknown schedule "
     "'warmup-cosin' (did you mean 'warmup-cosine'?)"),
    ("nope.warmup = 0.1", "[problems.regression] nope: unknown optimizer 'nope'"),
    ('schedule = "warmup-cosine"\nwarmup-cosine.warmupp = 0.1',
     "[problems.regression] warmup-cosine: unknown parameter 'warmupp' (did you mean "
     "'warmup'?)"),
    ('schedule = "warmup-cosine"\nwarmup-cosine.warmup = "x"',
     "[problems.regression] warmup-cosine: warmup must be a number"),
    ("warmup-cosine.warmup = 0.1", "[problems.regression] warmup-cosine: schedule "
     "'warmup-cosine' is not selected for problem 'regression'"),
])
def test_bad_schedules_in_a_problems_table_are_one_line(
        tmp_path: Path, lines: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(f'models = ["regression"]\noptimizers = ["sgd"]\n[problems.regression]\n'
                    f"{lines}\n")
    assert main(["run", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(("table", "message"), [
    ("trials = 0", "tune.trials: 0 is out of range"),
    ('sampler = "sobl"', "did you mean 'sobol'"),
    ('metric = "test_loss"', "would select on the test split"),
    ('hyperparameters = ["nope"]', "takes no hyperparameter 'nope'"),
    ("final_seeds = [0]", "final seed 0 is also a trial seed"),
    ("space.lr = { low = 0.0, high = 1.0 }", "a log scale needs low > 0"),
    ("[optimizer.sgd]\nlr = [0.1, 0.01]", "several values of a tuned hyperparameter (lr)"),
])
def test_bad_tune_tables_are_one_line(tmp_path: Path, table: str, message: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text(f'models = ["regression"]\noptimizers = ["sgd"]\n[tune]\n{table}\n')
    assert main(["run", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_grid_file_overrides_one_optimizers_space(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "g.toml"
    grid.write_text('models = ["regression"]\noptimizers = ["sgd", "adam"]\n[tune]\n'
                    'trials = 4\n[tune.space.sgd]\nlr = { low = 0.1, high = 0.5 }\n')
    assert main(["run", str(grid), "--dry-run"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if " seed " in line]
    lrs = {o: [float(w[3:]) for line in lines if f" {o} " in line
               for w in line.split() if w.startswith("lr=")] for o in ("sgd", "adam")}
    assert len(lrs["sgd"]) == 4 and all(0.1 <= lr <= 0.5 for lr in lrs["sgd"])
    assert len(lrs["adam"]) == 4 and all(1e-5 <= lr <= 0.1 for lr in lrs["adam"])
    assert not all(lr >= 0.1 for lr in lrs["adam"])  # adam keeps its declared space


def test_the_tune_quick_preset_is_8_trials_and_3_final_seeds(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--preset", "tune-quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "128 cells" in out  # 4 problems x 4 optimizers x 8 trials; then 3 x 16 finals


# -- tuning runs --------------------------------------------------------------------------
def test_a_tuning_run_selects_on_validation_and_reruns_on_fresh_seeds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t"
    assert main(["tune", *TINY, "--trials", "4", "--final-seeds", "2", "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert " trial 3 " in shown and " final " in shown  # show's tune column; * = selected
    tuning = _tuning(out)
    assert len(tuning["studies"]) == 4
    for study in tuning["studies"]:
        assert study["metric"] == "val_loss" and study["split"] == "validation"
        values = [t["value"] for t in study["trials"]]
        best = min(range(4), key=lambda i: values[i])
        assert study["selected"]["trial"] == best
        assert len({t["hyper"]["lr"] for t in study["trials"]}) == 4
        assert all(1e-5 <= t["hyper"]["lr"] <= 1.0 for t in study["trials"])
        assert len(study["final_cells"]) == 2
        assert all(t["at_chance"] == [] for t in study["trials"])
        assert {t["missed_target"] for t in study["trials"]} <= {True, False}
    # the same quasi-random points for every study with the same space
    sgd = [s for s in tuning["studies"] if s["optimizer"] == "sgd"]
    assert [t["hyper"] for t in sgd[0]["trials"]] == [t["hyper"] for t in sgd[1]["trials"]]
    summary = _summary(out)
    finals = [r for r in summary if r["tune_phase"] == "final"]
    assert len(finals) == 8 and {r["seed"] for r in finals} == {"1", "2"}
    assert all(r["tune_selected"] == "True" for r in finals)
    trials = [r for r in summary if r["tune_phase"] == "trial"]
    assert {r["seed"] for r in trials} == {"0"}
    assert sum(r["tune_selected"] == "True" for r in trials) == 4
    assert all(float(r["train_s"]) > 0 for r in summary)
    rows = _best(out)
    assert len(rows) == 4 and all(r["grid"] == f"{r['optimizer']}.lr = {r['hp.lr']}"
                                  for r in rows)


def test_a_pasted_best_configuration_reproduces_its_final_cells(tmp_path: Path) -> None:
    out = tmp_path / "t"
    assert main(["tune", "-m", "regression", "-o", "sgd", "--steps", "40", "--workers", "0",
                 "--quiet", "--trials", "2", "--final-seeds", "1", "--out", str(out)]) == 0
    (row,) = _best(out)
    grid = tmp_path / "g.toml"
    grid.write_text(f'models = ["regression"]\noptimizers = ["sgd"]\nseeds = [1]\nsteps = 40\n'
                    f'[problems.regression]\n{row["grid"]}\n')
    assert main(["run", str(grid), "--workers", "0", "--quiet", "--out",
                 str(tmp_path / "p")]) == 0
    pasted = _summary(tmp_path / "p")[0]
    final = next(r for r in _summary(out) if r["tune_phase"] == "final")
    assert pasted["hp.lr"] == final["hp.lr"] and pasted["val_loss"] == final["val_loss"]


def test_a_selected_edge_is_flagged_and_extend_widens_the_space(tmp_path: Path) -> None:
    text = ('models = ["regression"]\noptimizers = ["sgd"]\nsteps = 40\n[tune]\ntrials = 2\n'
            'sampler = "grid"\nfinal_seeds = 1\nspace.lr = { low = 1e-5, high = 1e-4 }\n')
    grid = tmp_path / "g.toml"
    grid.write_text(text)
    flagged = tmp_path / "f"
    assert main(["run", str(grid), "--workers", "0", "--quiet", "--out", str(flagged)]) == 0
    (study,) = _tuning(flagged)["studies"]
    assert sorted(t["hyper"]["lr"] for t in study["trials"]) == [1e-5, 1e-4]  # its ends
    assert study["selected"]["hyper"] == {"lr": 1e-4}  # too small a rate: the larger wins
    assert study["selected"]["edge"] == {"lr": "high"} and study["extensions"] == 0
    (row,) = _best(flagged)
    assert row["edge"] == "lr=high"
    final = next(r for r in _summary(flagged) if r["tune_phase"] == "final")
    assert final["tune_edge"] == "lr=high"

    grid.write_text(text + 'edge = "extend"\nextend_trials = 2\n')
    out = tmp_path / "t"
    assert main(["run", str(grid), "--workers", "0", "--quiet", "--out", str(out)]) == 0
    (study,) = _tuning(out)["studies"]
    origins = [t["origin"] for t in study["trials"]]
    assert origins[:4] == ["main", "main", "extension 1", "extension 1"]
    assert study["extensions"] >= 1 and study["space"]["lr"]["high"] > 1e-4
    assert all(t["hyper"]["lr"] >= 1e-4 for t in study["trials"][2:])  # the added strip
    assert study["selected"]["hyper"]["lr"] > 1e-4  # a rate beyond the first space won
    space = SearchSpace.from_dict({k: v for k, v in study["space"]["lr"].items()
                                   if k != "owner"}, "lr")
    side = space.edge(study["selected"]["hyper"]["lr"])
    assert study["selected"]["edge"] == ({} if side is None else {"lr": side})
    first = _tuning(flagged)["studies"][0]["trials"]
    assert [(t["cells"], t["value"]) for t in study["trials"][:2]] == \
        [(t["cells"], t["value"]) for t in first]  # the same cells, bit for bit


def _summary(out: Path) -> list[dict[str, str]]:
    with (out / "summary.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.long
@pytest.mark.slow
def test_a_resumed_tuning_run_selects_what_an_uninterrupted_one_selects(
        tmp_path: Path) -> None:
    """tpe proposes round by round from the recorded values: a run interrupted after its
    first round, resumed, proposes and selects exactly what one uninterrupted run does."""
    args = ["tune", "-m", "regression", "-o", "sgd,adam", "--steps", "60", "--workers", "1",
            "--quiet", "--sampler", "tpe", "--trials", "6", "--final-seeds", "2"]
    whole = run_cli(*args, "--out", "whole", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args, "--out", "cut"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": pythonpath()})
    cells = tmp_path / "cut" / "cells"
    wait_for(lambda: cells.is_dir() and len(list(cells.glob("*.json"))) >= 5,
             "five trial records", proc=proc)  # past tpe's first round of 2 per study
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    assert len(list(cells.glob("*.json"))) < len(list((tmp_path / "whole" / "cells")
                                                      .glob("*.json")))
    resumed = run_cli("run", "--resume", "cut", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = _tuning(tmp_path / "whole"), _tuning(tmp_path / "cut")
    for sa, sb in zip(a["studies"], b["studies"], strict=True):
        assert [t["hyper"] for t in sa["trials"]] == [t["hyper"] for t in sb["trials"]]
        assert sa["selected"] == sb["selected"] and sa["final_cells"] == sb["final_cells"]
        assert not math.isnan(sa["selected"]["value"])
    assert _best(tmp_path / "whole") == _best(tmp_path / "cut")
    assert sorted(p.name for p in (tmp_path / "cut" / "cells").glob("*.json")) == \
        sorted(p.name for p in (tmp_path / "whole" / "cells").glob("*.json"))
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1  # the rounds of one command are not resumes


def test_successive_halving_prunes_trials_of_later_rounds_at_a_rung(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t"
    args = ["tune", "-m", "regression", "-o", "sgd", "--steps", "90", "--workers", "0",
            "--trials", "6", "--final-seeds", "1", "--prune", "halving"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (study,) = _tuning(out)["studies"]
    states = [t["state"] for t in study["trials"]]
    assert states[:2] == ["ok", "ok"]  # the first round (a third) is never pruned
    assert "pruned" in states and "Not ok" not in printed
    assert f"({states.count('pruned')} pruned, 3 ok)" in printed  # 2 first trials, 1 final
    selected = study["selected"]["trial"]
    assert states[selected] == "ok"
    summary = _summary(out)
    pruned = [r for r in summary if r["status"] == "pruned"]
    for row in pruned:
        assert int(row["steps_done"]) < 90 and row["tune_value"] == ""
        assert "worse than the rung's threshold" in row["error"]
    full = [t for t in study["trials"] if t["state"] == "ok"]
    assert all(t["steps"] == 90 for t in full)
    assert all(t["steps"] < 90 for t in study["trials"] if t["state"] == "pruned")
    # pruned is a result: --rerun-failed runs nothing again, and --fail-on does not count it
    assert main(["run", "--resume", str(out), "--rerun-failed", "--workers", "0",
                 "--quiet"]) == 0
    assert "(7 already done)" in capsys.readouterr().out


@pytest.mark.long
@pytest.mark.slow
def test_a_tuning_run_on_dask_selects_what_a_local_one_selects(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    args = ["tune", "-m", "regression", "-o", "sgd", "--steps", "40", "--trials", "3",
            "--final-seeds", "1", "--quiet"]
    local = run_cli(*args, "--workers", "1", "--out", "local", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    remote = run_cli(*args, "--executor", "dask", "--executor-option", "n_workers=2",
                     "--out", "dask", cwd=tmp_path)
    assert remote.returncode == 0, remote.stderr
    a, b = _tuning(tmp_path / "local"), _tuning(tmp_path / "dask")
    assert [(t["hyper"], t["value"]) for t in a["studies"][0]["trials"]] == \
        [(t["hyper"], t["value"]) for t in b["studies"][0]["trials"]]
    assert a["studies"][0]["selected"] == b["studies"][0]["selected"]


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tuning run of sgd's learning rate and warmup-cosine's warmup on regression."""
    out = tmp_path_factory.mktemp("scheduled") / "t"
    assert main(["tune", "-m", "regression", "-o", "sgd", "--steps", "30", "--workers", "0",
                 "--quiet", "--set", "schedule=warmup-cosine", "--tune-params", "lr,warmup",
                 "--sampler", "grid", "--trials", "4", "--final-seeds", "1",
                 "--out", str(out)]) == 0
    return out


def test_a_schedule_parameter_is_tuned_with_the_learning_rate(scheduled: Path) -> None:
    out = scheduled
    (study,) = _tuning(out)["studies"]
    assert study["space"]["warmup"]["owner"] == "schedule"
    assert sorted({t["hyper"]["warmup"] for t in study["trials"]}) == [0.0, 0.3]
    final = next(r for r in _summary(out) if r["tune_phase"] == "final")
    record = json.loads((out / "cells" / f"{final['cell_id']}.json").read_text())
    assert record["cell"]["schedule"]["params"]["warmup"] == study["selected"]["hyper"]["warmup"]


def test_a_tuned_schedule_parameter_is_pasted_and_reproduces_its_final_cell(
        scheduled: Path, tmp_path: Path, host: PluginHost) -> None:
    (study,) = _tuning(scheduled)["studies"]
    selected = study["selected"]["hyper"]
    (row,) = _best(scheduled)
    assert row["grid"] == (f'sgd.lr = {selected["lr"]!r}; schedule = "warmup-cosine"; '
                           f'warmup-cosine.warmup = {selected["warmup"]!r}')
    final = next(r for r in _summary(scheduled) if r["tune_phase"] == "final")
    grid = tmp_path / "g.toml"
    grid.write_text(f'models = ["regression"]\noptimizers = ["sgd"]\nseeds = [{final["seed"]}]'
                    '\nsteps = 30\n[problems.regression]\n' + row["grid"].replace("; ", "\n"))
    spec = GridSpec()
    apply_toml(spec, load_grid_file(grid), "g")
    (cell,) = expand(spec, host.problems, host.optimizers, schedules=host.schedules).cells
    record = json.loads((scheduled / "cells" / f"{final['cell_id']}.json").read_text())
    assert cell.key == replace(Cell.from_dict(record["cell"]), tune=()).key
    assert main(["run", str(grid), "--workers", "0", "--quiet", "--out",
                 str(tmp_path / "p")]) == 0
    (pasted,) = _summary(tmp_path / "p")
    assert (pasted["hp.lr"], pasted["val_loss"]) == (final["hp.lr"], final["val_loss"])


def test_a_problem_without_a_validation_split_is_tuned_on_its_training_loss(
        tmp_path: Path) -> None:
    out = tmp_path / "t"
    assert main(["tune", "-m", "gan", "-o", "adam", "--steps", "30", "--workers", "0",
                 "--quiet", "--trials", "2", "--final-seeds", "1", "--out", str(out)]) == 0
    (study,) = _tuning(out)["studies"]
    assert (study["metric"], study["split"]) == ("final_loss", "training")
    assert {r["tune_split"] for r in _summary(out)} == {"training"}


def test_an_element_of_adams_betas_is_tuned_and_pasted_whole(tmp_path: Path) -> None:
    out = tmp_path / "t"
    assert main(["tune", "-m", "regression", "-o", "adam", "--steps", "30", "--workers", "0",
                 "--quiet", "--tune-params", "lr,betas[0]", "--trials", "2",
                 "--final-seeds", "1", "--out", str(out)]) == 0
    (study,) = _tuning(out)["studies"]
    assert study["space"]["betas[0]"]["scale"] == "one-minus-log"
    beta1 = study["selected"]["hyper"]["betas[0]"]
    (row,) = _best(out)
    assert row["grid"] == f"adam.betas = [{beta1!r}, 0.99]; adam.lr = {row['hp.lr']}"
    final = next(r for r in _summary(out) if r["tune_phase"] == "final")
    assert final["hp.betas"] == f"[{beta1},0.99]"


def test_a_problem_without_a_validation_split_gets_a_note_naming_its_metrics(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Selecting a GAN on its training loss picks the runs whose discriminator won
    (BENCHMARKS.md, tuned rankings): the tuner says which problems it selects on the
    training loss and which metric ``--tune-metric`` could select on instead, once each."""
    assert main(["tune", "-m", "gan,regression", "-o", "sgd,adam", "--trials", "2",
                 "--dry-run"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["harness: note: gan has no validation split, so its studies select on "
                   "the training loss (final_loss); --tune-metric curve_distance selects on "
                   "its curve_distance instead (curve_distance, inside_bounds, a_w1 are its "
                   "metrics)"]
    assert main(["tune", "-m", "gan", "-o", "sgd", "--trials", "2", "--dry-run",
                 "--tune-metric", "curve_distance"]) == 0
    assert capsys.readouterr().err == ""
