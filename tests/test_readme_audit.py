"""What the README promises about its commands, checked where an audit found it untrue."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.outcome import EXIT_CELLS_FAILED

GRID = """\
models = ["regression"]
optimizers = ["adam", "sgd"]

[model.regression]
activation = "relu"
steps = 100
batch_size = 20

[optimizer.adam]
lr = 0.02
"""


def dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    assert main(["run", *args, "--dry-run"]) == 0
    return [line for line in capsys.readouterr().out.splitlines() if " seed " in line]


def test_steps_and_batch_size_flags_override_a_files_per_model_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    lines = dry_run(capsys, str(grid), "--steps", "7", "--batch-size", "9")
    assert lines and all(line.endswith("steps=7 batch=9") for line in lines), lines


def test_steps_flag_overrides_the_quick_presets_dqn_budget(
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = dry_run(capsys, "--preset", "quick", "-m", "dqn", "-o", "sgd", "--steps", "20")
    assert lines and all("steps=20 " in line for line in lines), lines


def test_a_bare_set_overrides_a_files_scoped_setting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    lines = dry_run(capsys, str(grid), "--set", "activation=tanh", "--set", "lr=0.05")
    assert len(lines) == 2
    assert all("activation=tanh" in line and "lr=0.05" in line for line in lines), lines


def test_a_scoped_set_still_beats_a_bare_one_in_either_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID)
    for sets in (["adam.lr=0.001", "lr=0.05"], ["lr=0.05", "adam.lr=0.001"]):
        lines = dry_run(capsys, str(grid), *[a for s in sets for a in ("--set", s)])
        by_opt = {line.split()[2]: line for line in lines}
        assert "lr=0.001" in by_opt["adam"] and "lr=0.05" in by_opt["sgd"], lines


def test_a_cell_past_max_memory_mb_is_oom_however_the_library_reports_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Where the cnn's allocation fails under 50 MB varies from run to run: torch's allocator
    # ("can't allocate memory"), or oneDNN creating the convolution's kernel ("could not
    # create a primitive"); both are out of memory. A spawned worker reads the MNIST sample
    # afresh (a forked one may inherit what this test process has read).
    monkeypatch.setenv("HARNESS_WORKER_START", "spawn")
    out = tmp_path / "run"
    assert main(["run", "-m", "cnn", "-o", "adam", "-s", "0", "--steps", "20",
                 "--max-memory-mb", "50", "--workers", "1", "--quiet",
                 "--out", str(out)]) == EXIT_CELLS_FAILED
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["status"]) == ["oom"], summary["error"].tolist()


def test_a_dry_run_shows_a_roles_optimizer_settings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Two grids that differ only in a role's hyperparameters listed the same cells.
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["gan"]\noptimizers = ["adam"]\n'
                    '[model.gan.role.discriminator]\noptimizer = "sgd"\nlr = 0.001\n')
    lines = dry_run(capsys, str(grid))
    assert len(lines) == 1 and " discriminator:sgd discriminator.lr=0.001 cpu " in lines[0], lines
