"""Property-based: whatever a grid file or the command line holds, the answer is either a
valid grid or one line and exit code 2, never a traceback, and nothing is written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

NAMES = ["regression", "cnn", "sgd", "adam", "../x", "a/b", "", "lr", "activation", "steps",
         "models", "optimizers", "devices", "seeds", "batch_size", "params", "model",
         "optimizer", "tanh", "cuda", "cpu", "0-4", "🙂", "x" * 80]
KEYS = ["models", "optimizers", "devices", "seeds", "steps", "batch_size", "params", "model",
        "optimizer", "extra"]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(NAMES),
    st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4), max_leaves=8)
tables = st.dictionaries(st.sampled_from([*NAMES, "lr", "momentum", "dropout"]), values,
                         max_size=3)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def toml_key(k: str) -> str:
    return '"' + k.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


@st.composite
def grid_documents(draw: st.DrawFn) -> str:
    lines = []
    top = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=5))
    for key, value in top.items():
        if key not in ("params", "model", "optimizer"):
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for section in ("params", "model", "optimizer"):
        if section in top or draw(st.booleans()):
            if section == "params":
                lines.append("[params]")
                for k, v in draw(tables).items():
                    lines.append(f"{toml_key(k)} = {toml_value(v)}")
            else:
                for name, table in draw(st.dictionaries(st.sampled_from(NAMES), tables,
                                                        max_size=2)).items():
                    lines.append(f"[{section}.{toml_key(name)}]")
                    for k, v in table.items():
                        lines.append(f"{toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


def check(args: list[str], tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp / "out"
    code = main(["run", *args, "--dry-run", "--out", str(out)])
    captured = capsys.readouterr()
    assert code in (0, 2), captured
    if code == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("harness: error: "), captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(doc=grid_documents())
def test_structured_grid_files(doc: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(doc, encoding="utf-8")
    check([str(path)], tmp_path, capsys)


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes(raw: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.toml"
    path.write_bytes(raw)
    check([str(path)], tmp_path, capsys)


flag_values = st.one_of(st.sampled_from(NAMES), st.text(max_size=15),
                        st.integers(-5, 10**12).map(str))


@SETTINGS
@given(models=flag_values, optimizers=flag_values, seeds=flag_values, steps=flag_values,
       sets=st.lists(st.one_of(flag_values, st.tuples(flag_values, flag_values)
                               .map(lambda kv: f"{kv[0]}={kv[1]}")), max_size=3))
def test_command_line_values(models: str, optimizers: str, seeds: str, steps: str,
                             sets: list[str], tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    args = [f"--models={models}", f"--optimizers={optimizers}", f"--seeds={seeds}",
            f"--steps={steps}"]
    for s in sets:
        args.append(f"--set={s}")
    check(args, tmp_path, capsys)


def test_dry_run_lists_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-m", "regression", "-o", "sgd,adam", "-s", "0-1", "--dry-run",
                 "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip().endswith("4 cells")
    assert not (tmp_path / "o").exists()


HUGE = "9" * 5000


@pytest.mark.parametrize(("args", "grid", "names"), [
    (["-s", HUGE], None, "seeds: "),
    (["-s", f"0-{HUGE}"], None, "seeds: "),
    (["--steps", HUGE], None, "--steps: "),
    (["--set", f"lr={HUGE}"], None, "--set lr: "),
    (["--set", f"adam.betas=[0.9, {HUGE}]"], None, "--set adam.betas: "),
    (["-d", f"cuda:{HUGE}"], None, "unknown device 'cuda:"),
    ([], f"steps = {HUGE}\n", ": steps: "),
    ([], f"seeds = [0, {HUGE}]\n", ": seeds: "),
    ([], f'seeds = "{HUGE}"\n', ": seeds: "),
    ([], f"[model.cnn]\nbatch_size = {HUGE}\n", ": model.cnn.batch_size: "),
])
def test_too_long_integers(args: list[str], grid: str | None, names: str, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    if grid is not None:
        path = tmp_path / "grid.toml"
        path.write_text(grid, encoding="utf-8")
        args = [str(path), *args]
    assert main(["run", "-m", "regression", "-o", "sgd", *args, "--dry-run",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and names in err, err
    assert len(err.replace(str(tmp_path), "")) < 160, err  # the value is shortened
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("grid", "flags", "cells"), [
    (None, ["--preset", "quick", "-m", "cnn", "-o", "sgd"], 2),
    ('models = ["regression", "cnn"]\noptimizers = ["sgd", "adam"]\n[model.cnn]\nsteps = 3\n'
     '[optimizer.adam]\nlr = [0.1, 0.2]\n[params]\nactivation = "tanh"\n',
     ["-m", "cnn", "-o", "sgd"], 1),
])
def test_flags_narrow_a_preset_or_grid_file(grid: str | None, flags: list[str], cells: int,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    if grid is not None:
        path = tmp_path / "grid.toml"
        path.write_text(grid, encoding="utf-8")
        flags = [str(path), *flags]
    assert main(["run", *flags, "--dry-run", "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip().endswith(f"\n{cells} cells")


@pytest.mark.parametrize(("grid", "flags", "message"), [
    ('models = ["regression", "cnn"]\n[model.cnnn]\nsteps = 3\n', [],
     "settings for model 'cnnn': unknown model 'cnnn' (did you mean 'cnn'?)"),
    ('models = ["regression", "cnn"]\n', ["-m", "regression", "--set", "cnn.steps=3"],
     "settings for model 'cnn': it is not selected"),
    ('models = ["regression"]\noptimizers = ["sgd"]\ndevices = ["cpu", " cpu"]\n', [],
     "devices: the value 'cpu' is listed twice"),
])
def test_what_narrowing_does_not_excuse(grid: str, flags: list[str], message: str,
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(grid, encoding="utf-8")
    assert main(["run", str(path), *flags, "--dry-run", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
