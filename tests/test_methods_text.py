"""The report's methods section says what the code does: its numbers and names are read off
the page and checked against what the statistics functions compute (not against the
constants the text is written from), so the text and the code cannot drift apart."""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from harness.cli import main
from harness.report import build_report, stats


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("methods") / "run"
    assert main(["run", "-m", "regression", "-o", "sgd,adam", "-s", "0-2", "--steps", "40",
                 "--workers", "0", "--out", str(out), "--quiet"]) == 0
    index = build_report(out)
    page = index.read_text("utf-8")
    start = page.index('<section id="methods">')
    section = page[start:page.index("</section>", start)]
    text = html.unescape(re.sub(r"<[^>]+>", " ", section))
    text = re.sub(r"\s+", " ", text)
    return (text, pd.read_csv(Path(index).parent / "ranking.csv"),
            pd.read_parquet(out / "summary.parquet"))


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"the methods section does not say {pattern!r}: {text}"
    return float(match.group(1).replace(",", ""))


def test_the_interval_named_and_its_level_are_those_computed(
        report: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    text, ranking, summary = report
    level = _number(r"Intervals of a mean \((\d+(?:\.\d+)?)%\)", text) / 100
    for name in (stats.INTERVAL_LOG_T, stats.INTERVAL_T, stats.INTERVAL_T_TRUNCATED):
        assert name in text
    assert set(ranking["ci_method"]) <= {stats.INTERVAL_LOG_T, stats.INTERVAL_T,
                                         stats.INTERVAL_T_TRUNCATED}
    for _, r in ranking.iterrows():
        x = summary[(summary["model"] == r["problem"])
                    & (summary["optimizer"] == r["arm"])][r["metric"]].to_numpy(dtype=float)
        # what the text says, computed here independently with scipy
        assert r["ci_method"] == stats.INTERVAL_LOG_T and (x > 0).all()  # losses: positive
        logs = np.log(x)
        lo, hi = scipy.stats.t.interval(level, len(x) - 1, loc=logs.mean(),
                                        scale=scipy.stats.sem(logs))
        assert (r["ci_low"], r["ci_high"]) == pytest.approx((math.exp(lo), math.exp(hi)))
        assert r["ci_low"] > 0  # a positive metric's interval never goes below zero
    minimum = int(_number(r"Unavailable with fewer than (\d+) seeds", text))
    assert all(math.isnan(v) for v in stats.range_interval([1.0] * (minimum - 1))[:2])
    assert not math.isnan(stats.range_interval([1.0, 2.0, 3.0, 4.0][:minimum])[0])


def test_ranges_other_than_positive_get_the_interval_the_text_names() -> None:
    level = stats.LEVEL
    signed = [-1.0, 2.0, 0.5]
    lo, hi, name = stats.range_interval(signed)
    assert name == stats.INTERVAL_T
    assert (lo, hi) == pytest.approx(scipy.stats.t.interval(
        level, 2, loc=np.mean(signed), scale=scipy.stats.sem(signed)))
    lo, hi, name = stats.range_interval([0.0, 0.01, 1.0])
    assert name == stats.INTERVAL_T_TRUNCATED and lo == 0.0
    assert hi == pytest.approx(scipy.stats.t.interval(
        level, 2, loc=np.mean([0.0, 0.01, 1.0]), scale=scipy.stats.sem([0.0, 0.01, 1.0]))[1])


def test_the_paired_test_and_its_resampling_are_those_computed(
        report: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    text, ranking, _ = report
    assert f"two-sided {stats.PAIRED_TEST}" in text and "Holm's correction" in text
    exact_up_to = int(_number(r"exact over all 2ⁿ sign patterns up to (\d+) seeds", text))
    resamples = int(_number(r"above that ([\d,]+) random sign patterns", text))
    seed = int(_number(r"drawn with the fixed seed (\d+)", text))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=exact_up_to + 1), rng.normal(size=exact_up_to + 1)
    exact = stats.paired_permutation_test(a[:exact_up_to], b[:exact_up_to])
    assert exact.exact and exact.min_p == pytest.approx(2 / 2**exact_up_to)
    sampled = stats.paired_permutation_test(a, b)
    assert not sampled.exact and sampled.min_p == pytest.approx(1 / resamples)
    assert sampled.p_value == stats.paired_permutation_test(a, b, rng=seed).p_value
    # three seeds: the smallest p the text gives for them is what the table holds
    assert _number(r"(\d\.\d+) with 3 seeds", text) == ranking[~ranking["is_best"]]["min_p"].iloc[0]
    assert stats.holm([0.01, 0.04]) == pytest.approx([0.02, 0.04])


def test_the_band_and_the_profile_are_those_computed(
        report: tuple[str, pd.DataFrame, pd.DataFrame]) -> None:
    text, _, _ = report
    level = _number(r"order statistics: (\d+(?:\.\d+)?)% or more", text) / 100
    from_seeds = int(_number(r"or more from (\d+) seeds", text))
    assert stats.median_level(from_seeds) >= level > stats.median_level(from_seeds - 1)
    assert _number(r"\((\d+(?:\.\d+)?)% for 3 seeds", text) / 100 == stats.median_level(3)
    tau_max = _number(r"τ in \[1, (\d+(?:\.\d+)?)\]", text)
    times = pd.DataFrame({"a": [1.0], "b": [2.0]})
    score = stats.profile_score(times)
    assert score["b"] == pytest.approx((tau_max - 2) / (tau_max - 1))
    assert _number(r"divided by (\d+(?:\.\d+)?)", text) == tau_max - 1
