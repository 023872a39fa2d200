"""``harness compare`` on hand-made runs: verdicts, numbers and the printed lines worked out
in advance (issue 23, item 7: tests that would notice a wrong number)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.report.compare import (
    Thresholds,
    _judge,
    _pooled_sd,
    compare_runs,
    format_comparison,
    match_key,
)
from harness.report.gate import GateSettings, Speed, format_rates, judge, min_p, parse_rates
from tests.known_runs import accuracy_summary, cell, result, write_run

SEEDS = (0, 1, 2)
BASE_ACC = (0.80, 0.82, 0.84)


def _runs(tmp_path: Path, new_acc: tuple[float, ...], **kw: Any) -> tuple[Path, Path]:
    base = write_run(tmp_path / "base", [result("sgd", s, summary=accuracy_summary(a))
                                         for s, a in zip(SEEDS, BASE_ACC, strict=True)])
    new = write_run(tmp_path / "new", [result("sgd", s, summary=accuracy_summary(a))
                                       for s, a in zip(SEEDS, new_acc, strict=True)], **kw)
    return base, new


def _only(cmp: Any) -> dict[str, Any]:
    assert len(cmp.table) == 1
    return dict(cmp.table.iloc[0])


def test_a_ten_percent_accuracy_drop_on_every_seed_regresses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = _runs(tmp_path, tuple(0.9 * a for a in BASE_ACC))
    row = _only(compare_runs(base, new))
    # differences −0.080, −0.082, −0.084: shift −0.082 = −10 % of the base median 0.82;
    # threshold max(0.05 · 0.82, 2 · sd 0.002) = 0.041, 5 % of 0.82
    assert (row["metric"], row["metric_direction"]) == ("accuracy", "max")
    assert row["metric_verdict"] == "regressed" and row["metric_noise"] == "paired seeds"
    assert row["metric_change"] == pytest.approx(-0.10)
    assert row["metric_threshold"] == pytest.approx(0.05)
    assert (row["metric_base"], row["metric_new"]) == (pytest.approx(0.82),
                                                       pytest.approx(0.738))
    assert row["regressed"] and row["status_verdict"] == "unchanged"
    assert row["seeds"] == "3/3 → 3/3"
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().endswith("1 of 1 matched cell group(s) regressed.")
    assert "No regression" not in out
    assert "accuracy (max)" in out and "-10.0%" in out and "±5.0%" in out


def test_a_ten_percent_accuracy_gain_is_an_improvement(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base, new = _runs(tmp_path, tuple(1.1 * a for a in BASE_ACC))
    row = _only(compare_runs(base, new))
    assert row["metric_verdict"] == "improved" and not row["regressed"]
    assert row["metric_change"] == pytest.approx(0.10)
    assert main(["compare", str(base), str(new)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("No regression in 1 matched cell group(s).")
    assert "regressed" not in out


def test_a_change_within_the_floor_is_unchanged(tmp_path: Path) -> None:
    base, new = _runs(tmp_path, tuple(a - 0.03 for a in BASE_ACC))  # 3.7 %, floor 5 %
    row = _only(compare_runs(base, new))
    assert row["metric_verdict"] == "unchanged" and not row["regressed"]
    # a lower floor and k make the same change a regression
    th = Thresholds(metric_floor=0.01, k=0.0)
    assert _only(compare_runs(base, new, th))["metric_verdict"] == "regressed"


def test_the_paired_threshold_is_k_times_the_spread_of_the_differences(tmp_path: Path) -> None:
    # differences +0.00, −0.10, −0.20 (loss: lower is better, so +... is worse):
    base = write_run(tmp_path / "b", [result("sgd", s, summary={"final_loss": v})
                                      for s, v in zip(SEEDS, (1.0, 1.0, 1.0), strict=True)])
    new = write_run(tmp_path / "n", [result("sgd", s, summary={"final_loss": v})
                                     for s, v in zip(SEEDS, (1.0, 1.1, 1.2), strict=True)])
    row = _only(compare_runs(base, new))
    # shift 0.1, sd 0.1: threshold max(0.05, 2 · 0.1) = 0.2 -> unchanged
    assert (row["metric"], row["metric_direction"]) == ("final_loss", "min")
    assert row["metric_threshold"] == pytest.approx(0.2)
    assert row["metric_change"] == pytest.approx(0.1)
    assert row["metric_verdict"] == "unchanged"
    row = _only(compare_runs(base, new, Thresholds(k=0.5)))  # threshold 0.05
    assert row["metric_verdict"] == "regressed" and row["metric_threshold"] == pytest.approx(
        0.05)


def test_negative_metrics_use_their_magnitude(tmp_path: Path) -> None:
    # returns (higher is better) of −100, −110, −120 falling to 1.2 × those: −22 on the
    # median, −20 % of |−110|; threshold max(0.05 · 110, 2 · 2) = 5.5, 5 %
    def summary(ret: float) -> dict[str, Any]:
        return {"episode_return": ret, "target_metric": "episode_return",
                "target_mode": "max", "target_threshold": 0.0,
                "metric_directions": "episode_return=max"}
    base = write_run(tmp_path / "b", [result("dqn", s, summary=summary(v))
                                      for s, v in zip(SEEDS, (-100, -110, -120), strict=True)])
    new = write_run(tmp_path / "n", [result("dqn", s, summary=summary(1.2 * v))
                                     for s, v in zip(SEEDS, (-100, -110, -120), strict=True)])
    row = _only(compare_runs(base, new))
    assert row["metric_verdict"] == "regressed"
    assert row["metric_change"] == pytest.approx(-0.2)
    assert row["metric_threshold"] == pytest.approx(0.05)
    assert row["metric_base"] == -110 and row["metric_new"] == pytest.approx(-132)


def test_without_shared_seeds_the_seeds_are_pooled(tmp_path: Path) -> None:
    # base seeds 0-2 losses 1, 2, 3; new seeds 3-5. Pooled sd 1: threshold max(0.1, 2) = 2
    base = write_run(tmp_path / "b", [result("sgd", s, summary={"final_loss": v})
                                      for s, v in zip(SEEDS, (1.0, 2.0, 3.0), strict=True)])
    near = write_run(tmp_path / "n1", [result("sgd", s + 3, summary={"final_loss": v})
                                       for s, v in zip(SEEDS, (1.5, 2.5, 3.5), strict=True)])
    row = _only(compare_runs(base, near))
    assert row["metric_noise"] == "seeds" and row["metric_verdict"] == "unchanged"
    assert row["metric_change"] == pytest.approx(0.25)
    assert row["metric_threshold"] == pytest.approx(1.0)
    far = write_run(tmp_path / "n2", [result("sgd", s + 3, summary={"final_loss": v})
                                      for s, v in zip(SEEDS, (4.0, 5.0, 6.0), strict=True)])
    row = _only(compare_runs(base, far))
    assert row["metric_verdict"] == "regressed" and row["metric_change"] == pytest.approx(1.5)
    better = write_run(tmp_path / "n3", [result("sgd", s + 3, summary={"final_loss": v})
                                         for s, v in zip(SEEDS, (-2.5, -1.5, -0.5), strict=True)])
    assert _only(compare_runs(base, better))["metric_verdict"] == "improved"


def test_one_seed_a_side_uses_the_floor_only(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", 0, summary={"final_loss": 2.0})])
    new = write_run(tmp_path / "n", [result("sgd", 0, summary={"final_loss": 2.2})])
    row = _only(compare_runs(base, new))
    assert row["metric_noise"] == "floor only" and row["metric_threshold"] == pytest.approx(0.05)
    assert row["metric_verdict"] == "regressed" and row["metric_change"] == pytest.approx(0.1)
    assert row["throughput_verdict"] == "n/a"
    zero = write_run(tmp_path / "z", [result("sgd", 0, summary={"final_loss": 0.0})])
    row = _only(compare_runs(zero, new))
    assert math.isnan(row["metric_change"]) and math.isnan(row["metric_threshold"])
    assert row["metric_verdict"] == "regressed"  # 2.2 above 0 by more than 0


def test_a_side_without_ok_seeds_is_no_verdict_on_the_metric(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", s, summary={"final_loss": 1.0})
                                      for s in SEEDS])
    new = write_run(tmp_path / "n", [result("sgd", s, "diverged", summary={"final_loss": 1.0})
                                     for s in SEEDS])
    row = _only(compare_runs(base, new))
    assert row["metric_verdict"] == "n/a" and math.isnan(row["metric_new"])
    assert row["metric_noise"] == "floor only" and math.isnan(row["metric_change"])
    assert row["metric_threshold"] == pytest.approx(0.05)
    assert row["status_verdict"] == "regressed" and row["regressed"]
    assert row["seeds"] == "3/3 → 0/3"


def _statuses(tmp_path: Path, name: str, statuses: dict[int, str]) -> Path:
    return write_run(tmp_path / name, [result("sgd", s, st, summary={"final_loss": 1.0})
                                       for s, st in statuses.items()])


def test_the_per_seed_failure_rule(tmp_path: Path) -> None:
    base = _statuses(tmp_path, "b", {0: "diverged", 1: "ok", 2: "ok"})
    # the same fraction ok, but seed 1 stopped finishing: regressed
    swapped = _statuses(tmp_path, "n1", {0: "ok", 1: "diverged", 2: "ok"})
    assert _only(compare_runs(base, swapped))["status_verdict"] == "regressed"
    # the seed that failed in the base fails again, and a new seed fails: no seed that
    # finished in the base stopped (the fraction rule would say 2/3 -> 2/4 regressed)
    more = _statuses(tmp_path, "n2", {0: "diverged", 1: "ok", 2: "ok", 3: "timeout"})
    row = _only(compare_runs(base, more))
    assert row["status_verdict"] == "unchanged" and not row["regressed"]


def test_the_fraction_rule_without_shared_seeds(tmp_path: Path) -> None:
    base = _statuses(tmp_path, "b", {0: "ok", 1: "ok", 2: "diverged"})
    fewer = _statuses(tmp_path, "n1", {3: "ok", 4: "diverged", 5: "diverged"})
    assert _only(compare_runs(base, fewer))["status_verdict"] == "regressed"  # 1/3 < 2/3
    same = _statuses(tmp_path, "n2", {3: "ok", 4: "ok", 5: "diverged", 6: "ok", 7: "ok",
                                      8: "diverged"})
    assert _only(compare_runs(base, same))["status_verdict"] == "unchanged"  # 4/6 = 2/3


def test_throughput_through_the_gate(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    seeds = (0, 1, 2, 3)
    fast, slow = (1000.0, 1010.0, 990.0, 1005.0), (850.0, 858.0, 842.0, 851.0)
    base = write_run(tmp_path / "b", [result("sgd", s, summary=accuracy_summary(0.8, r))
                                      for s, r in zip(seeds, fast, strict=True)])
    new = write_run(tmp_path / "n", [result("sgd", s, summary=accuracy_summary(0.8, r))
                                     for s, r in zip(seeds, slow, strict=True)])
    row = _only(compare_runs(base, new))
    assert row["throughput_verdict"] == "regressed" and row["throughput_evidence"] == "runs"
    assert row["throughput_p"] == pytest.approx(2 / 70)
    assert (row["throughput_base"], row["throughput_new"]) == (1002.5, 850.5)
    assert row["throughput_threshold"] == pytest.approx(0.10)
    assert row["regressed"] and row["metric_verdict"] == "unchanged"
    assert main(["compare", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "1,002" in out and "850.5" in out and "0.029" in out and "-15.2%" in out
    # another CPU model in the new run: inconclusive, not a failure, with the reason
    other = write_run(tmp_path / "o", [result("sgd", s, summary=accuracy_summary(0.8, r))
                                       for s, r in zip(seeds, slow, strict=True)], cpu="cpu-b")
    cmp = compare_runs(base, other)
    assert not cmp.regressed and not cmp.failed()
    reason = "the runs ran on different CPUs (cpu-a and cpu-b)"
    assert cmp.inconclusive == [f"toy | sgd | cpu: {reason}"]
    text = format_comparison(cmp)
    assert "\n1 cell group(s) with an inconclusive throughput change (not a failure):\n" \
        f"  toy | sgd | cpu: {reason}\n" in text
    assert text.endswith("\nNo regression in 1 matched cell group(s).")
    # a manifest without a CPU model does not count as another machine
    unknown = write_run(tmp_path / "u", [result("sgd", s, summary=accuracy_summary(0.8, r))
                                         for s, r in zip(seeds, slow, strict=True)], cpu=None)
    assert _only(compare_runs(base, unknown))["throughput_verdict"] == "regressed"


def test_metric_option(tmp_path: Path) -> None:
    base, new = _runs(tmp_path, BASE_ACC)
    row = _only(compare_runs(base, new, Thresholds(metric="final_loss")))
    assert (row["metric"], row["metric_direction"]) == ("final_loss", "min")
    row = _only(compare_runs(base, new, Thresholds(metric="accuracy")))
    assert (row["metric"], row["metric_direction"]) == ("accuracy", "max")
    with pytest.raises(UsageError, match=r"^--metric 'nope': the base run has no such column$"):
        compare_runs(base, new, Thresholds(metric="nope"))


def test_lost_cells_and_the_lines_that_name_them(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [
        *(result("sgd", s, summary={"final_loss": 1.0}) for s in SEEDS),
        *(result("adam", s, summary={"final_loss": 1.0}) for s in SEEDS)])
    extra = cell("lion", 0).to_dict()
    new = write_run(tmp_path / "n", [
        result("sgd", 0, summary={"final_loss": 1.0}),
        result("sgd", 1, "error", error="boom\nTraceback..."),
        result("sgd", 2, "error", error=None),
        result("rmsprop", 0, summary={"final_loss": 1.0})],
        manifest={"cells": [{**extra, "cell_id": cell("lion", 0).cell_id},
                            {"cell_id": "x"},
                            {**cell("sgd", 0).to_dict(), "cell_id": cell("sgd", 0).cell_id}]})
    cmp = compare_runs(base, new)
    assert cmp.only_base == ["toy | adam | cpu"]
    assert len(cmp.only_new) == 1 and cmp.only_new[0].startswith("toy | rmsprop | cpu: ")
    assert cmp.missing == ["toy | adam | cpu | seed 0", "toy | adam | cpu | seed 1",
                           "toy | adam | cpu | seed 2", "toy | lion | cpu | seed 0"]
    assert cmp.errors == ["toy | sgd | cpu | seed 1: boom", "toy | sgd | cpu | seed 2: no message"]
    assert cmp.lost and cmp.regressed and cmp.failed(allow_missing=True)
    text = format_comparison(cmp)
    assert "\n1 cell group(s) only in base (not compared):\n  toy | adam | cpu\n" in text
    assert f"\n1 cell group(s) only in new (not compared):\n  {cmp.only_new[0]}\n" in text
    assert "\n4 cell(s) missing from the new run; the gate fails:\n" \
           "  toy | adam | cpu | seed 0\n" in text
    assert "\n2 cell(s) ended error in the new run; the gate fails:\n" \
           "  toy | sgd | cpu | seed 1: boom\n  toy | sgd | cpu | seed 2: no message\n" in text
    allowed = format_comparison(cmp, allow_missing=True)
    assert "missing from the new run; accepted (--allow-missing):" in allowed
    # sgd: seeds 1 and 2 stopped finishing
    assert text.endswith("\n1 of 1 matched cell group(s) regressed.")


def test_lost_cells_fail_the_gate_unless_allowed(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = write_run(tmp_path / "b", [result("sgd", s, summary={"final_loss": 1.0})
                                      for s in SEEDS])
    new = write_run(tmp_path / "n", [result("sgd", s, summary={"final_loss": 1.0})
                                     for s in SEEDS[:2]])
    cmp = compare_runs(base, new)
    assert cmp.missing == ["toy | sgd | cpu | seed 2"] and cmp.errors == []
    assert cmp.lost and not cmp.regressed
    assert cmp.failed() and not cmp.failed(allow_missing=True)
    assert main(["compare", str(base), str(new)]) == 1
    assert "1 cell(s) missing from the new run; the gate fails:" in capsys.readouterr().out
    assert main(["compare", str(base), str(new), "--allow-missing"]) == 0
    complete = write_run(tmp_path / "c", [result("sgd", s, summary={"final_loss": 1.0})
                                          for s in SEEDS])
    cmp = compare_runs(base, complete)
    assert not cmp.lost and not cmp.failed() and cmp.inconclusive == []


def test_nothing_in_common_names_at_most_three_new_groups(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", 0, summary={"final_loss": 1.0})])
    new = write_run(tmp_path / "n", [result(o, 0, summary={"final_loss": 1.0})
                                     for o in ("adam", "lion", "rmsprop", "adagrad")])
    with pytest.raises(UsageError) as info:
        compare_runs(base, new)
    message = str(info.value)
    assert message.startswith(f"nothing to compare: no cell group of {str(new)!r} matches one "
                              f"of {str(base)!r}; toy | ")
    assert message.endswith("; and 1 more new group(s)")
    assert message.count(": closest base group toy | sgd | cpu differs in optimizer") == 3


def test_match_key_leaves_out_the_seed_and_versions() -> None:
    a = cell("sgd", 0, versions=(("harness", "1"),)).to_dict()
    b = cell("sgd", 5, versions=(("harness", "2"),)).to_dict()
    assert match_key(a) == match_key(b)
    assert match_key(a) != match_key(cell("adam", 0).to_dict())
    assert '"seed"' not in match_key(a) and " " not in match_key(a)


def test_number_formats(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", 0, summary={"final_loss": 1234.5,
                                                                "samples_per_s": 0.123456})])
    new = write_run(tmp_path / "n", [result("sgd", 0, summary={"final_loss": 1234.5,
                                                               "samples_per_s": math.nan})])
    text = format_comparison(compare_runs(base, new))
    header, line = text.splitlines()[:2]
    assert header.split() == ["cell", "seeds", "ok", "per", "s", "base", "per", "s", "new",
                              "change", "p", "p", "Holm", "throughput", "metric", "base", "new",
                              "m",
                              "change", "m", "thr", "final", "metric", "status"]
    assert line.split() == ["toy", "|", "sgd", "|", "cpu", "1/1", "→", "1/1", "0.1235", "-",
                            "-", "-", "-", "n/a", "final_loss", "(min)", "1,234", "1,234", "+0.0%",
                            "±5.0%", "unchanged", "unchanged"]


def test_gate_words_known_answers() -> None:
    assert format_rates([1234567.0, 0.5, 812.25]) == "1.23457e+06 0.5 812.25"
    assert parse_rates(format_rates([1234567.0, 0.5])) == [1234570.0, 0.5]
    # not significant (overlapping runs): the reason adds the cells' noise when over 10 %
    base, new = [1000.0, 700.0, 1300.0, 900.0], [800.0, 650.0, 1200.0, 700.0]
    for b_disp, n_disp, note in ((0.25, 0.05, "; noisy cells (dispersion ±25%)"),
                                 (0.05, 0.3, "; noisy cells (dispersion ±30%)"),
                                 (0.10, 0.10, ""), (None, None, "")):
        t = judge(Speed(runs=base, dispersion=[] if b_disp is None else [b_disp]),
                  Speed(runs=new, dispersion=[] if n_disp is None else [n_disp]),
                  GateSettings())
        assert t["verdict"] == "inconclusive"
        assert t["reason"] == f"not significant (Mann-Whitney U p={t['p']:.3g} on 4 and 4 runs)" \
            + note


def test_pooled_sd_and_the_windows_fallback_known_answers() -> None:
    # variances 1 (3 values) and 20/3 (4 values): pooled (2 · 1 + 3 · 20/3) / 5 = 4.4
    assert _pooled_sd([1, 2, 3], [2, 4, 6, 8]) == pytest.approx(math.sqrt(4.4))
    assert _pooled_sd([2, 4, 6, 8], [1, 2, 3]) == pytest.approx(math.sqrt(4.4))
    assert _pooled_sd([1, 3], [2, 4]) == pytest.approx(math.sqrt(2))  # two a side is enough
    assert _pooled_sd([1, None, 3], [2, 4, math.nan]) == pytest.approx(math.sqrt(2))
    assert math.isnan(_pooled_sd([1.0], [1, 2, 3])) and math.isnan(_pooled_sd([1, 2, 3], [1]))
    # one value a side and a spread from elsewhere (the windows): k · sd joins the floor
    j = _judge([1.0], [1.2], "min", 0.05, 2.0, fallback_sd=0.15)
    assert j["noise"] == "windows" and j["threshold"] == pytest.approx(0.3)
    assert j["verdict"] == "unchanged"
    j = _judge([1.0], [1.2], "min", 0.05, 2.0)
    assert j["noise"] == "floor only" and j["verdict"] == "regressed"


def _flat(rate: float, n: int = 4, share: float | None = None,
          windows: int = 0) -> Speed:
    return Speed(runs=[rate] * n, windows=[rate / 10] * windows,
                 other_share=[] if share is None else [share])


def test_min_p_edges() -> None:
    assert min_p(1, 1) == 1.0 and min_p(5, 0) == 1.0
    assert min_p(1, 5) == pytest.approx(2 / 6) and min_p(5, 1) == pytest.approx(2 / 6)


def test_the_gate_at_its_boundaries() -> None:
    slow = [850.0, 858.0, 842.0, 851.0]
    base = Speed(runs=[1000.0, 1010.0, 990.0, 1005.0])
    # a level equal to the smallest p-value 4 and 4 runs can give is out of reach
    t = judge(base, Speed(runs=slow), GateSettings(alpha=min_p(4, 4)))
    assert t["verdict"] == "inconclusive" and t["evidence"] == "too few"
    # exactly MIN_WINDOWS windows a side are enough to test
    b = Speed(runs=[1000.0], windows=[100.0, 101.0, 99.0, 100.5, 99.5])
    n = Speed(runs=[800.0], windows=[80.0, 81.0, 79.0, 80.5, 79.5])
    t = judge(b, n, GateSettings())
    assert t["evidence"] == "windows" and t["verdict"] == "inconclusive" and t["p"] < 0.05
    # a CPU model known on one side only is not another machine
    t = judge(base, Speed(runs=slow), GateSettings(), (None, "cpu-b"))
    assert t["verdict"] == "regressed"
    t = judge(base, Speed(runs=slow), GateSettings(), ("cpu-a", None))
    assert t["verdict"] == "regressed"


def test_the_machine_load_rule_known_answers() -> None:
    # q = (1 − 0.1) / (1 − 0) = 0.9: exactly at the tolerance, the load did not differ
    t = judge(_flat(1000.0, share=0.0), _flat(850.0, share=0.1), GateSettings())
    assert t["verdict"] == "regressed"
    # q = 0.5: a slowdown to exactly q / 2 = 25 % can still be the load's; below it cannot
    t = judge(_flat(1000.0, share=0.0), _flat(250.0, share=0.5), GateSettings())
    assert t["verdict"] == "inconclusive"
    t = judge(_flat(1000.0, share=0.0), _flat(200.0, share=0.5), GateSettings())
    assert t["verdict"] == "regressed"
    # q = 0.5 / 0.8 = 0.625, q / 2 = 31 %; measured 80 %
    t = judge(_flat(1000.0, share=0.2), _flat(800.0, share=0.5), GateSettings())
    assert t["verdict"] == "inconclusive"
    assert t["reason"] == ("machine load differed: other processes took 20% of the CPU time "
                           "in the base and 50% in the new run, which can explain a slowdown "
                           "to 31% (measured 80%)")


def test_unpaired_higher_is_better_and_no_verdict_cases(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", s, summary=accuracy_summary(a))
                                      for s, a in zip(SEEDS, BASE_ACC, strict=True)])
    # other seeds, half the accuracy: b − n = 0.41 worse, beyond max(0.041, 2 · 0.02)
    half = write_run(tmp_path / "h", [result("sgd", s + 3, summary=accuracy_summary(a / 2))
                                      for s, a in zip(SEEDS, BASE_ACC, strict=True)])
    row = _only(compare_runs(base, half))
    assert row["metric_noise"] == "seeds" and row["metric_verdict"] == "regressed"
    assert row["regressed"] and row["status_verdict"] == "unchanged"
    assert row["metric_change"] == pytest.approx(-0.5)
    double = write_run(tmp_path / "d", [result("sgd", s + 3, summary=accuracy_summary(a * 1.5))
                                        for s, a in zip(SEEDS, BASE_ACC, strict=True)])
    row = _only(compare_runs(base, double))
    assert row["metric_verdict"] == "improved" and not row["regressed"]
    # the base never recorded the metric: no verdict, and not a regression
    blank = write_run(tmp_path / "x", [result("sgd", s, summary={"final_loss": None})
                                       for s in SEEDS])
    some = write_run(tmp_path / "s", [result("sgd", s, summary={"final_loss": 1.0})
                                      for s in SEEDS])
    row = _only(compare_runs(blank, some))
    assert row["metric_verdict"] == "n/a" and not row["regressed"]
    assert math.isnan(row["metric_threshold"]) and math.isnan(row["metric_change"])
    # a base median of 2 and a new run without ok seeds: the floor relative to 2 is 5 %
    two = write_run(tmp_path / "t", [result("sgd", s, summary={"final_loss": 2.0})
                                     for s in SEEDS])
    lost = write_run(tmp_path / "l", [result("sgd", s, "diverged") for s in SEEDS])
    assert _only(compare_runs(two, lost))["metric_threshold"] == pytest.approx(0.05)
    zero = write_run(tmp_path / "z", [result("sgd", s, summary={"final_loss": 0.0})
                                      for s in SEEDS])
    row = _only(compare_runs(zero, lost))
    assert row["metric_verdict"] == "n/a" and math.isnan(row["metric_threshold"])


def test_an_empty_comparison_prints_so() -> None:
    import pandas as pd

    from harness.report.compare import Comparison
    cmp = Comparison(table=pd.DataFrame())
    assert cmp.inconclusive == [] and not cmp.regressed and not cmp.failed()
    assert format_comparison(cmp) == "(no cells in common)\n\nNo regression in 0 matched cell " \
        "group(s)."


def test_match_key_is_the_sorted_compact_json() -> None:
    key = match_key({"b": [1, 2], "a": "x", "seed": 3, "versions": {"harness": "1"}})
    assert key == '{"a":"x","b":[1,2]}'
    assert match_key({"a": "x", "b": [1, 2]}) == key


def test_metric_option_judges_the_chosen_column(tmp_path: Path) -> None:
    # accuracy does not move; the chosen final_loss doubles on every seed
    base = write_run(tmp_path / "b", [result("sgd", s, summary=accuracy_summary(0.8))
                                      for s in SEEDS])
    new = write_run(tmp_path / "n", [result("sgd", s, summary=accuracy_summary(0.8,
                                                                                final_loss=1.0))
                                     for s in SEEDS])
    row = _only(compare_runs(base, new, Thresholds(metric="final_loss")))
    assert (row["metric_base"], row["metric_new"]) == (0.5, 1.0)
    assert row["metric_verdict"] == "regressed" and row["metric_change"] == 1.0


def _scored(tmp_path: Path, name: str, values: tuple[float, ...], **more: Any) -> Path:
    return write_run(tmp_path / name, [result("sgd", s, summary={"final_loss": 0.5, **more,
                                                                 "fid_score": v, "lag": v,
                                                                 "top5accuracy": v})
                                       for s, v in zip(SEEDS, values, strict=True)])


def test_the_metric_side_the_target_mode_first_then_the_name(tmp_path: Path) -> None:
    """Records without ``metric_directions``: the target's recorded mode (FID, lower is
    better) comes before what the name says (``..._score``, higher)."""
    target = {"target_metric": "fid_score", "target_mode": "min", "target_threshold": 1.0}
    base = _scored(tmp_path, "b", (10.0, 10.0, 10.0), **target)
    worse = _scored(tmp_path, "n", (12.0, 12.0, 12.0), **target)
    row = _only(compare_runs(base, worse))
    assert (row["metric"], row["metric_direction"]) == ("fid_score", "min")
    assert row["metric_verdict"] == "regressed"
    row = _only(compare_runs(base, worse, Thresholds(metric="fid_score")))
    assert (row["metric_direction"], row["metric_verdict"]) == ("min", "regressed")
    # another column: its name, read off its end (better_side), else its words
    for metric, side, verdict in (("top5accuracy", "max", "improved"), ("lag", "min",
                                                                        "regressed")):
        row = _only(compare_runs(base, worse, Thresholds(metric=metric)))
        assert (row["metric"], row["metric_direction"], row["metric_verdict"]) == \
            (metric, side, verdict)
    # a metric_directions entry says more than the name
    said = {**target, "metric_directions": "fid_score=min,lag=max"}
    base = _scored(tmp_path, "b2", (10.0, 10.0, 10.0), **said)
    worse = _scored(tmp_path, "n2", (12.0, 12.0, 12.0), **said)
    row = _only(compare_runs(base, worse, Thresholds(metric="lag")))
    assert (row["metric_direction"], row["metric_verdict"]) == ("max", "improved")


def test_two_shared_seeds_pair_and_a_zero_base_has_no_relative_change() -> None:
    from harness.report.compare import _judge_paired
    j = _judge_paired({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.5}, "min", 0.05, 2.0)
    # differences 0.5 and 0.5: sd 0, threshold 0.05 · 1.5 (paired, not pooled sd 0.71)
    assert (j["noise"], j["verdict"], j["base"], j["new"]) == ("paired seeds", "regressed",
                                                                1.5, 2.0)
    assert j["change"] == pytest.approx(1 / 3) and j["threshold"] == pytest.approx(0.05)
    j = _judge_paired({0: 0.0, 1: 0.0}, {0: 1.0, 1: 1.0}, "min", 0.05, 2.0)
    assert j["verdict"] == "regressed" and j["noise"] == "paired seeds"
    assert math.isnan(j["change"]) and math.isnan(j["threshold"])


def test_a_change_equal_to_the_threshold_is_unchanged() -> None:
    from harness.report.compare import _verdict
    assert _verdict(0.5, 0.5) == "unchanged" and _verdict(-0.5, 0.5) == "unchanged"
    assert _verdict(0.75, 0.5) == "regressed" and _verdict(-0.75, 0.5) == "improved"


def test_alpha_and_the_load_tolerance_reach_the_gate(tmp_path: Path) -> None:
    fast, slow = (1000.0, 1010.0, 990.0, 1005.0), (700.0, 708.0, 692.0, 701.0)
    seeds = (0, 1, 2, 3)
    base = write_run(tmp_path / "b", [result("sgd", s, summary=accuracy_summary(
        0.8, r, other_cpu_share=0.05)) for s, r in zip(seeds, fast, strict=True)])
    new = write_run(tmp_path / "n", [result("sgd", s, summary=accuracy_summary(
        0.8, r, other_cpu_share=0.1)) for s, r in zip(seeds, slow, strict=True)])
    # q = 0.9 / 0.95 = 0.947: within the default tolerance (0.10), not within 0.01
    assert _only(compare_runs(base, new))["throughput_verdict"] == "regressed"
    row = _only(compare_runs(base, new, Thresholds(load_tolerance=0.01)))
    assert row["throughput_verdict"] == "inconclusive"
    assert row["throughput_reason"].startswith("machine load differed: other processes took 5%")
    row = _only(compare_runs(base, new, Thresholds(alpha=0.01)))
    assert (row["throughput_verdict"], row["throughput_evidence"]) == ("inconclusive",
                                                                       "too few")


def test_nothing_in_common_with_up_to_three_new_groups(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", 0, summary={"final_loss": 1.0})])
    for optimizers in (("adam",), ("adam", "lion", "rmsprop")):
        new = write_run(tmp_path / "-".join(optimizers),
                        [result(o, 0, summary={"final_loss": 1.0}) for o in optimizers])
        with pytest.raises(UsageError) as info:
            compare_runs(base, new)
        shown = "; ".join(f"toy | {o} | cpu: closest base group toy | sgd | cpu differs in "
                          f"optimizer (base sgd; new {o})" for o in optimizers)
        assert str(info.value) == (f"nothing to compare: no cell group of {str(new)!r} matches "
                                   f"one of {str(base)!r}; {shown}")


def test_a_cpu_model_that_is_not_a_name_is_unknown(tmp_path: Path) -> None:
    seeds = (0, 1, 2, 3)
    fast, slow = (1000.0, 1010.0, 990.0, 1005.0), (850.0, 858.0, 842.0, 851.0)
    base = write_run(tmp_path / "b", [result("sgd", s, summary=accuracy_summary(0.8, r))
                                      for s, r in zip(seeds, fast, strict=True)])
    for name, machine in (("n1", {"cpu": 7}), ("n2", {"cpu": ""}), ("n3", "box")):
        new = write_run(tmp_path / name, [result("sgd", s, summary=accuracy_summary(0.8, r))
                                          for s, r in zip(seeds, slow, strict=True)],
                        manifest={"machine": machine})
        assert _only(compare_runs(base, new))["throughput_verdict"] == "regressed", machine


def test_missing_cells_from_the_manifest_in_order_and_once(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", [result("sgd", s, summary={"final_loss": 1.0})
                                      for s in SEEDS])

    def listed(c: Any) -> dict[str, Any]:  # another key order than the records'
        return {"cell_id": c.cell_id, **dict(reversed(list(c.to_dict().items())))}
    new = write_run(tmp_path / "n", [result("sgd", s, summary={"final_loss": 1.0})
                                     for s in SEEDS[:2]],
                    manifest={"cells": [listed(cell("sgd", 0)), {"cell_id": "x"},
                                        listed(cell("sgd", 2)), listed(cell("lion", 0)),
                                        listed(cell("lion", 1))]})
    assert compare_runs(base, new).missing == [
        "toy | sgd | cpu | seed 2", "toy | lion | cpu | seed 0", "toy | lion | cpu | seed 1"]


def test_number_and_threshold_formats() -> None:
    from harness.report.compare import _fmt, _thr
    assert (_fmt(1000.0), _fmt(-1000.0), _fmt(999.5), _fmt(math.nan)) == \
        ("1,000", "-1,000", "999.5", "-")
    assert (_thr(0.05), _thr(math.nan), _thr(math.inf)) == ("±5.0%", "-", "-")


def test_medians_and_spreads_of_nothing_warn_nothing() -> None:
    import warnings

    from harness.report.compare import _median
    assert _median([1, None, 3]) == 2.0
    assert _pooled_sd([1, 3], [2, None, 4]) == pytest.approx(math.sqrt(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(_median([])) and math.isnan(_median([None]))
        assert math.isnan(_pooled_sd([1.0], [1, 2, 3])) and math.isnan(_pooled_sd([], [1, 2]))
