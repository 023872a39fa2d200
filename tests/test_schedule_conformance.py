"""The conformance kit's learning-rate schedule checks: every built-in passes, and a broken
schedule (a final rate that is not the declared one, a rise after the warm-up, a warm-up
that starts elsewhere, state kept between calls) is caught, from a real plugin file too."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from harness.plugins import PluginHost
from harness.schedules import ScheduleSpec, warmup_steps
from harness.testing.conformance import (
    SCHEDULE_CHECKS,
    ConformanceFailure,
    ConformanceSkip,
    check_schedule,
)
from tests.test_conformance import run_pytest

BUILTINS = ["constant", "cosine", "warmup-cosine", "linear", "step"]


@pytest.mark.parametrize("check", list(SCHEDULE_CHECKS))
@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_schedules_pass_every_check(host: PluginHost, name: str, check: str) -> None:
    spec = host.schedules.get(name)
    try:
        check_schedule(spec, check)
    except ConformanceSkip as skip:  # only the warm-up check, on a schedule without one
        assert check == "warmup" and name != "warmup-cosine", skip
    else:
        if check == "warmup":
            assert name == "warmup-cosine"
    assert spec.final is not None  # every built-in declares its final rate


def _cosine_ignoring_its_ratio(step: int, steps: int, final_lr_ratio: float = 0.0) -> float:
    return 1.0 - step / (steps - 1) if steps > 1 else 0.0  # always to 0


def _rises_at_the_end(step: int, steps: int) -> float:
    return 2.0 if step == steps - 1 and steps > 2 else 1.0


def _warmup_from_zero(step: int, steps: int, warmup: float = 0.1) -> float:
    w = warmup_steps(warmup, steps)
    return step / w if step < w else 1.0


_CALLS: list[int] = []


def _remembers(step: int, steps: int) -> float:
    _CALLS.append(step)
    return 1.0 / len(_CALLS)


@pytest.mark.parametrize(("spec", "check", "words"), [
    (ScheduleSpec("lazy", _cosine_ignoring_its_ratio, {"final_lr_ratio": 0.0}, "d",
                  final="final_lr_ratio"),
     "final_rate", "with final_lr_ratio=0.25 over 1 steps: the multiplier at the last step (0) "
                   "is 0.0, not the declared 0.25"),
    (ScheduleSpec("bump", _rises_at_the_end, {}, "d"),
     "monotone", "over 3 steps: the multiplier rises from 1.0 at step 1 to 2.0 at step 2"),
    (ScheduleSpec("late", _warmup_from_zero, {"warmup": 0.1}, "d", final=1.0, warmup="warmup",
                  warmup_start=lambda steps, warmup: 1 / warmup_steps(warmup, steps)),
     "warmup", "the multiplier at step 0 is 0.0, not the declared warm-up start"),
    (ScheduleSpec("late", _warmup_from_zero, {"warmup": 0.1}, "d", warmup="warmup"),
     "warmup", "the multiplier at the warm-up's last step"),
    (ScheduleSpec("stateful", _remembers, {}, "d"),
     "values", "(it must depend on the step only)"),
    (ScheduleSpec("negative", lambda step, steps: -1.0, {}, "d"),
     "values", "the multiplier at step 0 is -1.0 (it must be a finite number >= 0)"),
    (ScheduleSpec("Bad Name", lambda step, steps: 1.0, {}, "d"), "metadata", "name"),
])
def test_a_broken_schedule_fails_the_check_naming_it(spec: ScheduleSpec, check: str,
                                                     words: str) -> None:
    with pytest.raises(ConformanceFailure) as caught:
        check_schedule(spec, check)
    message = str(caught.value)
    assert message.startswith(f"conformance check {check!r} failed for schedule "
                              f"{spec.name!r}: "), message
    assert words in message, message


def test_what_a_schedule_declares_must_name_its_parameters() -> None:
    spec = ScheduleSpec("typo", lambda step, steps, final_lr_ratio=0.0: 1.0,
                        {"final_lr_ratio": 0.0}, "d", final="final_ratio")
    with pytest.raises(TypeError, match="final='final_ratio' is not one of its parameters"):
        harness_registry().add(spec)
    with pytest.raises(ConformanceFailure, match=r"'metadata' failed .* final='final_ratio'"):
        check_schedule(spec, "metadata")


def test_declarations_that_do_not_apply_are_skips() -> None:
    plain = ScheduleSpec("plain", lambda step, steps: 1.0, {}, "d", monotone=False)
    for check in ("final_rate", "monotone", "warmup"):
        with pytest.raises(ConformanceSkip):
            check_schedule(plain, check)
    check_schedule(dataclasses.replace(plain, final=1.0), "final_rate")


def harness_registry() -> Any:
    import harness

    return harness.ScheduleRegistry()


BROKEN_SCHEDULES = '''\
from harness import hookimpl
from harness.schedules import ScheduleSpec


def to_half(step, steps, final_lr_ratio=0.5):
    return 1.0 - 0.9 * step / (steps - 1) if steps > 1 else 0.1  # to 0.1, whatever the ratio


def well(step, steps, final_lr_ratio=0.0):
    t = step / (steps - 1) if steps > 1 else 1.0  # one step: it is the last
    return 1.0 + (final_lr_ratio - 1.0) * t


@hookimpl
def register_schedules(registry):
    registry.add(ScheduleSpec("to-half", to_half, {"final_lr_ratio": 0.5},
                              "linear decay, to final_lr_ratio x lr", final="final_lr_ratio"))
    registry.add(ScheduleSpec("well", well, {"final_lr_ratio": 0.0},
                              "linear decay, as declared", final="final_lr_ratio"))
'''


@pytest.mark.slow
def test_the_suite_catches_a_broken_schedule_plugin_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``pytest --harness-conformance=NAME`` on a ``--plugin`` file (HARNESS_PLUGIN_FILES)."""
    plugin = tmp_path / "my_schedules.py"
    plugin.write_text(BROKEN_SCHEDULES)
    monkeypatch.setenv("HARNESS_PLUGIN_FILES", str(plugin))
    proc, outcomes = run_pytest(tmp_path, "harness", "--harness-conformance=my_schedules",
                                cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    failed = outcomes.named("failure")
    assert set(failed) == {"test_schedule_final_rate[to-half]"}, failed
    assert ("conformance check 'final_rate' failed for schedule 'to-half': with "
            "final_lr_ratio=0.5 over 1 steps: the multiplier at the last step (0) is 0.1"
            in failed["test_schedule_final_rate[to-half]"])
    for check in SCHEDULE_CHECKS:
        if check != "warmup":
            assert outcomes.results[f"test_schedule_{check}[well]"][0] == "passed"
    assert outcomes.results["test_schedule_warmup[well]"][0] == "skipped"
    assert outcomes.results["test_plugin_loads[my_schedules]"][0] == "passed"
