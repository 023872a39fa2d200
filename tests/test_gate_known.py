"""The throughput gate (:mod:`harness.report.gate`) on hand-made samples: each verdict's exact
reason, and every threshold exactly at its boundary (numbers exact in binary, so that the
boundary is the boundary). Fast: part of the mutation selection (``[tool.mutmut]``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from harness.report.gate import (
    GateSettings,
    Speed,
    _median,
    judge,
    mann_whitney,
    over_the_family,
    parse_rates,
)

BASE = [1000.0, 1010.0, 990.0, 1005.0]  # median 1002.5
HALF = [500.0, 505.0, 495.0, 502.5]  # median 501.25: exactly half, fully below the base
FAST, SLOW = [10.0, 11.0, 12.0, 13.0, 14.0], [1.0, 2.0, 3.0, 4.0, 5.0]  # p = 2 / 252


def test_add_reads_a_row_and_its_steady_windows() -> None:
    side = Speed()
    side.add({"samples_per_s": "800", "throughput_dispersion": 0.2, "other_cpu_share": "0.3"},
             [(100, 2.0), (50, 0.0), (30, 0.5), (10, -1.0)])
    # windows: steps / seconds, those without a positive duration left out
    assert side.runs == [800.0] and not side.repeats
    assert side.windows == [50.0, 60.0]
    assert side.dispersion == [0.2] and side.other_share == [0.3]
    side.add({"samples_per_s": None, "throughput_dispersion": "n/a"}, [])
    assert side.runs == [800.0] and side.dispersion == [0.2] and side.other_share == [0.3]


def test_parse_rates_keeps_positive_finite_numbers() -> None:
    assert parse_rates("0 5 -1 inf nan 2.5") == [5.0, 2.5]
    # a table reader's single number, numpy's integer too (not a Python int)
    assert parse_rates(np.int64(812)) == [812.0] and parse_rates(np.float64(0.5)) == [0.5]
    assert parse_rates(True) == [] and parse_rates(np.array([812.5, 790.0])) == []


def test_no_ok_seed_and_a_zero_base() -> None:
    t = judge(Speed(), Speed(runs=[1.0]), GateSettings())
    assert math.isnan(t["base"]) and t["new"] == 1.0 and math.isnan(t["change"])
    assert (t["verdict"], t["reason"], t["evidence"]) == ("n/a", "no ok seed on a side", "-")
    assert t["threshold"] == 0.10 and math.isnan(t["p"])
    t = judge(Speed(runs=[0.0] * 4), Speed(runs=[5.0] * 4), GateSettings())
    assert (t["verdict"], t["base"], t["new"]) == ("n/a", 0.0, 5.0) and math.isnan(t["change"])
    # a base below 1 per second is still judged
    t = judge(Speed(runs=[0.5, 0.5, 0.5, 0.5]), Speed(runs=[0.25, 0.25, 0.25, 0.25]),
              GateSettings())
    assert t["verdict"] == "regressed" and t["change"] == -0.5


def test_within_the_minimum_effect_names_it() -> None:
    t = judge(Speed(runs=BASE), Speed(runs=HALF), GateSettings(floor=0.6))
    assert (t["verdict"], t["reason"]) == ("unchanged", "within the minimum effect (±60%)")
    assert (t["evidence"], t["change"], t["threshold"]) == ("-", -0.5, 0.6)
    assert math.isnan(t["p"])
    # a change exactly at the minimum effect is tested: −25 % against a floor of 25 %
    base, new = [3.5, 3.75, 4.25, 4.5], [2.25, 2.75, 3.25, 3.375]  # medians 4 and 3
    t = judge(Speed(runs=base), Speed(runs=new), GateSettings(floor=0.25))
    assert t["change"] == -0.25 and t["verdict"] == "regressed"


def test_no_change_is_unchanged_even_at_a_floor_of_zero() -> None:
    # one run a side (equal medians) and windows that differ significantly: at a floor of 0
    # every change counts, and the median did not change
    t = judge(Speed(runs=[1000.0], windows=FAST), Speed(runs=[1000.0], windows=SLOW),
              GateSettings(floor=0.0))
    assert (t["change"], t["verdict"]) == (0.0, "unchanged")
    assert t["reason"] == "within the minimum effect (±0%)"
    t = judge(Speed(runs=[1000.0], windows=FAST), Speed(runs=[999.0], windows=SLOW),
              GateSettings(floor=0.0))
    assert (t["evidence"], t["verdict"]) == ("windows", "inconclusive")


def test_the_verdicts_exact_reasons() -> None:
    t = judge(Speed(runs=BASE), Speed(runs=HALF), GateSettings())
    assert (t["verdict"], t["evidence"]) == ("regressed", "runs")
    assert t["reason"] == "Mann-Whitney U p=0.0286 on 4 and 4 runs"
    t = judge(Speed(runs=HALF), Speed(runs=BASE), GateSettings())
    assert (t["verdict"], t["reason"]) == ("improved", "Mann-Whitney U p=0.0286")
    t = judge(Speed(runs=BASE), Speed(runs=HALF), GateSettings(alpha=0.01))
    assert (t["verdict"], t["evidence"]) == ("inconclusive", "too few")
    assert t["reason"] == ("too few samples: 4 and 4 runs, 0 and 0 windows (more seeds or "
                           "--repeats)")
    assert math.isnan(t["p"])


def test_a_p_value_equal_to_alpha_is_not_significant() -> None:
    base, new = [10.0, 11.0, 12.0, 13.0, 14.0], [5.0, 6.0, 7.0, 8.0, 10.5]
    p = mann_whitney(base, new)
    assert 2 / 252 < p < 0.05
    t = judge(Speed(runs=base), Speed(runs=new), GateSettings(alpha=p))
    assert t["verdict"] == "inconclusive" and t["p"] == p
    assert t["reason"] == f"not significant (Mann-Whitney U p={p:.3g} on 5 and 5 runs)"
    assert judge(Speed(runs=base), Speed(runs=new),
                 GateSettings(alpha=p * 1.01))["verdict"] == "regressed"


def _windows(runs: float, windows: list[float], dispersion: float) -> Speed:
    """Three runs (too few for the test) and the windows, with the cells' dispersion."""
    return Speed(runs=[runs] * 3, windows=windows, dispersion=[dispersion])



def test_windows_alone_never_give_a_verdict() -> None:
    """Too few runs for the test: the windows are tested and their p reported, but the
    windows of one process share its conditions (identical reruns moved by up to 40 %):
    inconclusive, whatever the dispersion or the direction, with the noise named."""
    t = judge(_windows(4.0, FAST, 0.0), _windows(3.0, SLOW, 0.0), GateSettings())
    assert (t["evidence"], t["change"], t["verdict"]) == ("windows", -0.25, "inconclusive")
    assert t["p"] == pytest.approx(0.00794, abs=1e-5)
    assert t["reason"] == ("only windows differ (Mann-Whitney U p=0.00794 on 5 and 5 windows), "
                           "and the windows of one process share its conditions; 3 and 3 runs "
                           "cannot reach p < 0.05: more seeds or --repeats")
    t = judge(_windows(3.0, SLOW, 0.0), _windows(4.0, FAST, 0.0), GateSettings())
    assert (t["change"], t["verdict"]) == (pytest.approx(1 / 3), "inconclusive")
    t = judge(_windows(4.0, FAST, 0.0), _windows(2.0, SLOW, 0.6), GateSettings(alpha=0.1))
    assert t["reason"] == ("only windows differ (Mann-Whitney U p=0.00794 on 5 and 5 windows); "
                           "noisy cells (dispersion ±60%), and the windows of one process share "
                           "its conditions; 3 and 3 runs cannot reach p < 0.1: more seeds or "
                           "--repeats")


def test_the_not_significant_note_names_the_noise() -> None:
    base, new = [1000.0, 700.0, 1300.0, 900.0], [800.0, 650.0, 1200.0, 700.0]
    t = judge(Speed(runs=base, dispersion=[0.6]), Speed(runs=new), GateSettings())
    assert t["reason"] == (f"not significant (Mann-Whitney U p={t['p']:.3g} on 4 and 4 runs); "
                           "noisy cells (dispersion ±60%)")


def test_the_load_reason_in_full() -> None:
    # q = (1 − 0.8) / (1 − 0.6) = 0.5: a slowdown to 50 % is within what the load explains
    t = judge(Speed(runs=BASE, other_share=[0.6]), Speed(runs=HALF, other_share=[0.8]),
              GateSettings())
    assert t["verdict"] == "inconclusive"
    assert t["reason"] == ("machine load differed: other processes took 60% of the CPU time "
                           "in the base and 80% in the new run, which can explain a slowdown "
                           "to 25% (measured 50%)")


def test_median_of_nothing_is_nan_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(_median([])) and math.isnan(_median([math.nan]))
    assert _median([1, None, 3, math.inf]) == 2.0



def _verdict(verdict: str, p: float, evidence: str = "runs") -> dict[str, object]:
    return {"verdict": verdict, "p": p, "evidence": evidence, "reason": "r"}


def test_the_family_of_groups_is_holm_corrected() -> None:
    """Two of six groups at p 0.041 and 0.015 (what identical reruns gave on the idle
    machine): neither survives Holm over the six tested; p 0.0022 among three does."""
    family = [_verdict("regressed", 0.041), _verdict("regressed", 0.015),
              _verdict("inconclusive", 0.589), _verdict("inconclusive", 0.24),
              _verdict("inconclusive", 0.132), _verdict("unchanged", math.nan, "-")]
    out = over_the_family(family, 0.05)
    assert [v["verdict"] for v in out] == ["inconclusive"] * 5 + ["unchanged"]
    assert out[1]["p_holm"] == pytest.approx(5 * 0.015)
    assert out[0]["p_holm"] == pytest.approx(4 * 0.041)
    assert math.isnan(out[5]["p_holm"])
    assert out[1]["reason"] == ("not significant over the 5 groups tested (Mann-Whitney U "
                                "p=0.015 on runs, 0.075 after Holm's correction)")
    kept = over_the_family([_verdict("regressed", 0.0022, "repeats"),
                            _verdict("improved", 0.3), _verdict("inconclusive", 0.5)], 0.05)
    assert [v["verdict"] for v in kept] == ["regressed", "inconclusive", "inconclusive"]
    assert kept[0]["p_holm"] == pytest.approx(0.0066)
    assert kept[0]["reason"] == "r"  # a verdict that stands keeps its reason
    # a lone group is its own family; windows and untested groups do not count
    alone = over_the_family([_verdict("regressed", 0.0286),
                             _verdict("inconclusive", 1e-20, "windows")], 0.05)
    assert alone[0]["verdict"] == "regressed" and alone[0]["p_holm"] == pytest.approx(0.0286)
    assert math.isnan(alone[1]["p_holm"])
    # an adjusted p equal to alpha is not below it
    assert over_the_family([_verdict("regressed", 0.025), _verdict("inconclusive", 0.9)],
                           0.05)[0]["verdict"] == "inconclusive"
