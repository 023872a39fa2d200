"""Option bounds and defaults are defined once: the defaults are RunOptions' and
CellLimits' fields, the bounds :mod:`harness.limits`'. The parser, the grid, the command
line and the manifest check that ``--resume`` passes all read them; these tests fail when
one of them keeps a copy that drifts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.cli.parser import build_parser
from harness.errors import UsageError
from harness.executor import CellLimits, RunOptions
from harness.grid import parse_bounded
from harness.limits import BOUNDS, MAX_TIMEOUT_S
from harness.run.manifest import BOUNDED_OPTIONS
from harness.run.resume import read_options

BASELINE = Path(__file__).resolve().parent.parent / "benchmarks" / "baseline"

#: Each parser default (argparse dest) and the dataclass whose field is its one definition.
PARSER_DEFAULTS = {"windows": RunOptions, "threads": CellLimits, "loader_workers": RunOptions,
                   "loader": RunOptions, "opt_impl": RunOptions, "compile_backend": RunOptions}

#: Each bounded option and the command line that sets it (the value goes last).
FLAGS = {"steps": ["--steps"], "batch_size": ["--batch-size"],
         "checkpoint_every": ["--checkpoint-every"], "windows": ["--windows"],
         "workers": ["--workers"], "threads": ["--threads"],
         "workers_per_device": ["--workers-per-device"], "max_memory_mb": ["--max-memory-mb"],
         "loader_workers": ["--loader", "dataloader", "--loader-workers"],
         "repeats": ["--repeats"]}


@pytest.mark.parametrize("dest", list(PARSER_DEFAULTS))
def test_the_parsers_defaults_are_the_options_defaults(dest: str) -> None:
    default = getattr(PARSER_DEFAULTS[dest](), dest)
    assert build_parser().parse_args(["run"]).__dict__[dest] == str(default)
    if dest in BOUNDS:  # and the default lies within the option's bounds
        assert parse_bounded(str(default), dest, dest) == default


def test_every_bound_is_tested_on_the_command_line() -> None:
    assert set(FLAGS) == set(BOUNDS)


@pytest.mark.parametrize("option", list(FLAGS))
def test_the_command_line_takes_exactly_the_bounds(
        option: str, capsys: pytest.CaptureFixture[str]) -> None:
    low, high = BOUNDS[option]
    *before, flag = FLAGS[option]
    run = ["run", "-m", "regression", "-o", "sgd", "--dry-run", *before, flag]
    for value in (low, high):
        assert main([*run, str(value)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    for value in (low - 1, high + 1):
        assert main([*run, str(value)]) == 2
        assert capsys.readouterr().err == (
            f"harness: error: {flag}: {value} is out of range ({low} to {high})\n")


def test_the_timeout_bound(capsys: pytest.CaptureFixture[str]) -> None:
    run = ["run", "-m", "regression", "-o", "sgd", "--dry-run", "--timeout"]
    assert main([*run, str(MAX_TIMEOUT_S - 1)]) == 0
    for value in (0, MAX_TIMEOUT_S):
        capsys.readouterr()
        assert main([*run, str(value)]) == 2
        assert f"--timeout: {value} is out of range" in capsys.readouterr().err


def test_the_grid_file_takes_the_same_bounds(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("steps", "batch_size"):
        low, high = BOUNDS[key]
        for value, code in ((low, 0), (high, 0), (low - 1, 2), (high + 1, 2)):
            grid = tmp_path / "grid.toml"
            grid.write_text(f'models = ["regression"]\noptimizers = ["sgd"]\n{key} = {value}\n')
            assert main(["run", str(grid), "--dry-run"]) == code
            if code:
                assert f"{key}: {value} is out of range ({low} to {high})" in \
                    capsys.readouterr().err


def _run_with(tmp_path: Path, where: str, value: Any) -> Path:
    """A copy of the baseline run's manifest with ``options.WHERE`` set to ``value``."""
    run = tmp_path / f"{where}-{value}"
    run.mkdir()
    manifest = json.loads((BASELINE / "manifest.json").read_text("utf-8"))
    section, _, key = where.rpartition(".")
    (manifest["options"][section] if section else manifest["options"])[key] = value
    (run / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    return run


def test_the_manifest_check_bounds_every_option_resume_takes() -> None:
    assert set(BOUNDED_OPTIONS) == {"windows", "checkpoint_every", "speed.loader_workers",
                                    "grid_spec.steps", "grid_spec.batch_size", "repeats"}


@pytest.mark.parametrize("where", list(BOUNDED_OPTIONS))
def test_the_manifest_check_takes_exactly_the_bounds(where: str, tmp_path: Path) -> None:
    low, high = BOUNDS[BOUNDED_OPTIONS[where]]
    for value in (low, high):
        read_options(_run_with(tmp_path, where, value))
    for value in (low - 1, high + 1):
        run = _run_with(tmp_path, where, value)
        with pytest.raises(UsageError) as info:
            read_options(run)
        assert str(info.value) == (f"cannot resume: {run / 'manifest.json'} is damaged: "
                                   f"options.{where} {value} is out of range ({low} to {high})")


def test_the_stored_baseline_run_is_still_resumable(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/baseline, written before the grid and resume were split up, resumes:
    its missing cell runs, with the windows and settings its manifest holds."""
    run = tmp_path / "baseline"
    shutil.copytree(BASELINE, run)
    missing = sorted((run / "cells").glob("regression-sgd-cpu-s0-*.json"))
    assert len(missing) == 1
    missing[0].unlink()
    assert main(["run", "--resume", str(run), "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "18 cells"
    assert main(["run", "--resume", str(run), "--workers", "0", "--quiet"]) == 0
    assert "18 of 18 cells recorded (18 ok) (17 already done)" in capsys.readouterr().out
    manifest = json.loads((run / "manifest.json").read_text("utf-8"))
    assert manifest["command"] == ["harness", "run", "benchmarks/gate.toml", "--out",
                                   "benchmarks/baseline", "--quiet"]
    assert manifest["options"]["windows"] == 50
    record = json.loads(next((run / "cells").glob("regression-sgd-cpu-s0-*.json")).read_text())
    assert len(record["curve"]) == 1 + 50  # step 0, then the 50 windows


def test_reading_a_grid_imports_no_torch() -> None:
    code = ("import sys; from harness.grid import GridSpec, apply_toml, load_preset, "
            "normalize_device, device_available; spec = GridSpec(); "
            "apply_toml(spec, load_preset('quick'), 'quick'); normalize_device('cuda:1'); "
            "device_available('cpu'); assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
