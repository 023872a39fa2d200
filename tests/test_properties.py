"""Property-based (Hypothesis): the grid parser, ``--set``, seed ranges and record loading
give a result or one line of UsageError for any input, never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.grid import GridSpec, apply_toml, load_grid_file, parse_seeds, parse_set
from harness.limits import MAX_SEED, MAX_SEEDS
from harness.results import RunDirectory
from harness.results.tables import curves_frame, summary_frame

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def _one_line(exc: UsageError) -> None:
    text = str(exc)
    assert text and "\n" not in text, repr(text)


# -- the grid parser ---------------------------------------------------------------------
TOKENS = ["[", "]", "{", "}", "=", ",", '"', "'", '"""', "#", "\n", " ", ".", "models",
          "optimizers", "seeds", "steps", "model", "optimizer", "params", "regression", "adam",
          "lr", "0", "1e3", "-", "0-4", "true", "[[", "]]", "\\", "\u0663", "99999999999999999999"]


@PROPERTY
@given(st.lists(st.sampled_from(TOKENS), max_size=60) | st.text(max_size=200))
def test_a_grid_file_is_read_or_refused_in_one_line(parts: list[str] | str) -> None:
    text = parts if isinstance(parts, str) else "".join(parts)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.toml"
        path.write_text(text, "utf-8")
        try:
            apply_toml(GridSpec(), load_grid_file(path), "grid.toml")
        except UsageError as exc:
            _one_line(exc)


@PROPERTY
@given(st.integers(min_value=0, max_value=400), st.sampled_from(["[", "{a = ", "[1, "]))
def test_nesting_of_any_depth_is_read_or_refused_in_one_line(depth: int, opener: str) -> None:
    closer = {"[": "]", "{a = ": "}", "[1, ": "]"}[opener]
    text = "x = " + opener * depth + "1" + closer * depth + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.toml"
        path.write_text(text, "utf-8")
        try:
            load_grid_file(path)
            assert depth <= 16
        except UsageError as exc:
            _one_line(exc)
            assert depth > 16 or "unknown key" in str(exc)


# -- --set ---------------------------------------------------------------------------------
@PROPERTY
@given(st.text(max_size=80) | st.lists(st.sampled_from(
    ["adam", ".", "lr", "=", "[", "]", ",", "0.1", '"', "x", "{", "}", "1_0", "\u0663", " "]),
    max_size=30).map("".join))
def test_a_set_flag_is_parsed_or_refused_in_one_line(text: str) -> None:
    try:
        scope, key, values = parse_set(text)
    except UsageError as exc:
        _one_line(exc)
        return
    assert key and values and (scope is None or scope)


# -- seed ranges ---------------------------------------------------------------------------
@PROPERTY
@given(st.text(alphabet="0123456789-, \u0663\uff11x", max_size=30))
def test_seeds_are_parsed_or_refused_in_one_line(text: str) -> None:
    try:
        seeds = parse_seeds(text)
    except UsageError as exc:
        _one_line(exc)
        return
    assert seeds and len(seeds) == len(set(seeds)) <= MAX_SEEDS
    assert all(0 <= s <= MAX_SEED for s in seeds)
    assert text.isascii()


@PROPERTY
@given(st.integers(min_value=0, max_value=MAX_SEED), st.integers(min_value=0, max_value=200))
def test_a_seed_range_is_the_seeds_from_its_first_to_its_last(low: int, span: int) -> None:
    high = min(MAX_SEED, low + span)
    assert parse_seeds(f"{low}-{high}") == list(range(low, high + 1))
    assert parse_seeds([low, f"{low + 1}-{high + 1}"] if high < MAX_SEED else [low]) == \
        ([low, *range(low + 1, high + 2)] if high < MAX_SEED else [low])


# -- record loading ------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=12)


@pytest.fixture(scope="module")
def record() -> dict[str, Any]:
    """A real record, from a one-cell run."""
    from harness.cli import main

    out = Path(tempfile.mkdtemp(prefix="harness-props-")) / "run"
    assert main(["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "10",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    [path] = (out / "cells").glob("*.json")
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def _mutations(rec: dict[str, Any]) -> st.SearchStrategy[tuple[list[str], Any]]:
    """A path into the record (keys or indexes) and a value to put there."""
    paths = [["status"], ["summary"], ["summary", "samples_per_s"], ["curve"], ["curve", 0],
             ["curve", 0, "step"], ["cell"], ["cell", "seed"], ["cell", "params"],
             ["cell", "hyper"], ["cell", "problem"], ["key"], ["cell_id"], ["error"]]
    return st.tuples(st.sampled_from(paths), json_values)


@PROPERTY
@given(data=st.data())
def test_any_damage_to_a_record_is_read_or_left_out_never_raised(
        record: dict[str, Any], data: st.DataObject) -> None:
    rec = json.loads(json.dumps(record))
    for path, value in data.draw(st.lists(_mutations(rec), min_size=1, max_size=3)):
        target: Any = rec
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    text = json.dumps(rec)
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    if data.draw(st.booleans()):
        text = text[:cut]  # truncated, as a crash mid-write would leave it (before atomics)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory(Path(tmp))
        run.cells_dir.mkdir()
        (run.cells_dir / f"{record['cell_id']}.json").write_text(text, "utf-8")
        good, corrupt = run.scan()
        assert len(good) + len(corrupt) == 1
        summary_frame(good), curves_frame(good)  # what is read is tabulated
        for reason in run.corrupt_reasons.values():
            assert "\n" not in reason


# -- curve points: the written-out check agrees with the general one -------------------------
CURVE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                         st.text(max_size=2), st.lists(st.integers(), max_size=2),
                         st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@PROPERTY
@given(st.dictionaries(st.text(max_size=4) | st.integers(), CURVE_VALUES, max_size=5))
def test_the_curve_point_check_is_the_general_shape_check(point: dict[Any, Any]) -> None:
    from harness.results.records import Number, _numbers, conforms

    assert _numbers(point) == conforms(point, dict[str, Number])
