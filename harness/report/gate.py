"""The throughput gate: when is a throughput change a regression, and when can it not be told?

``harness compare`` calls a cell group's throughput **regressed** only when all of these hold:

1. **Effect.** The new median throughput is below the base's by at least the minimum effect
   (``--throughput-floor``, default 10 %): smaller changes are **unchanged** whatever a test
   says, since they are within what a shared machine moves between runs.
2. **Significance.** A two-sided Mann-Whitney U test (:data:`TEST_NAME`; scipy's exact
   distribution for small samples) rejects "the two runs' throughputs come from the same
   distribution" at ``--alpha`` (default 0.05). Its samples are the group's **runs**: each
   ``ok`` seed's ``samples_per_s`` and, with ``--repeats K``, the K timing runs of each seed
   in fresh worker processes (:data:`REPEAT_RATES`), when the two sides have enough of them
   for the test to reach ``alpha`` at all (its smallest two-sided p-value is
   2 / C(n + m, n): 0.10 for 3 and 3 runs, 0.029 for 4 and 4). Otherwise the samples are the
   steady-state **windows** of every ``ok`` seed (at least :data:`MIN_WINDOWS` a side) are
   tested, but a change they show is only ever **inconclusive**: the windows of one process
   share its conditions, and whole runs move more than their windows do (identical reruns
   of the gate grid on an idle machine: up to 40 %, and the window test called 5 of 120
   groups regressed, ``benchmarks/gate_false_alarms.py``). A regression needs runs.
3. **The same machine, similarly loaded.** The runs ran on the same CPU model (the
   manifests' ``machine.cpu``), and the CPU time other processes left free did not shrink:
   with ``s`` the median ``other_cpu_share`` of the group's cells on a side (clipped to 0.99),
   ``q = (1 − s_new) / (1 − s_base)``; the load **differed** when ``q < 1 − load_tolerance``
   (``--load-tolerance``, default 0.10). Then only a slowdown beyond what the load could
   explain counts: throughput falling below ``q / 2`` of the base's (the cell's share of the
   CPU shrinks with what the others took, and shared caches, memory bandwidth and clocks can
   cost as much again). A smaller slowdown is inconclusive, naming the two shares.

4. **Over the family.** A comparison judges many groups at once; their runs' p-values are
   Holm-adjusted over the groups tested (:func:`over_the_family`), and a verdict stands only
   when the adjusted p is below ``alpha``: the chance that identical reruns fail the gate
   somewhere stays at ``alpha``, not ``alpha`` per group.

A change that passes 1 but not 2, 3 or 4 is **inconclusive**, with the reason; an
inconclusive group never fails the gate. A significant speed-up beyond the minimum effect
is **improved**.
Records without ``other_cpu_share`` (written before it existed) skip check 3.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from harness.report.stats import holm

#: The test the gate runs on the two sides' throughput samples (named in the output).
TEST_NAME = "Mann-Whitney U"
DEFAULT_ALPHA = 0.05
DEFAULT_LOAD_TOLERANCE = 0.10
#: Fewer steady windows than this on a side: too few to test.
MIN_WINDOWS = 5
#: Dispersion (IQR / median) above which a cell's throughput is noisy (as ``show`` flags).
NOISY = 0.10
#: ``other_cpu_share`` is clipped to this, so that ``q`` stays finite. Close to 1: on a
#: saturated machine (a 1-thread cell among 7 runnable threads on 2 cores sees 0.93) the
#: little CPU time left free is what one more process takes away.
MAX_SHARE = 0.99
#: The summary column holding a cell's ``--repeats`` timing runs' throughputs.
REPEAT_RATES = "throughput_repeat_rates"


@dataclass
class Speed:
    """One side's throughput evidence for a cell group."""

    #: Each ok seed's samples_per_s, and its repeats' throughputs: one per process run.
    runs: list[float] = field(default_factory=list)
    #: Whether ``runs`` holds --repeats timing runs.
    repeats: bool = False
    #: The steady windows' throughputs, every ok seed's (steps per second).
    windows: list[float] = field(default_factory=list)
    dispersion: list[float] = field(default_factory=list)
    other_share: list[float] = field(default_factory=list)

    def add(self, row: Mapping[str, Any], windows: Sequence[tuple[int, float]]) -> None:
        """An ok cell's row of the summary and its steady windows (steps, seconds)."""
        rate = _num(row.get("samples_per_s"))
        if math.isfinite(rate):
            self.runs.append(rate)
        repeats = parse_rates(row.get(REPEAT_RATES))
        if repeats:
            self.runs.extend(repeats)
            self.repeats = True
        self.windows.extend(n / dt for n, dt in windows if dt > 0)
        for name, into in (("throughput_dispersion", self.dispersion),
                           ("other_cpu_share", self.other_share)):
            value = _num(row.get(name))
            if math.isfinite(value):
                into.append(value)


def parse_rates(text: Any) -> list[float]:
    """The throughputs of :data:`REPEAT_RATES` (space-separated numbers; a table reader may
    have read a single one as a number)."""
    if isinstance(text, numbers.Real) and not isinstance(text, bool):  # numpy's too
        text = str(text)
    if not isinstance(text, str):
        return []
    out = []
    for word in text.split():
        value = _num(word)
        if math.isfinite(value) and value > 0:
            out.append(value)
    return out


def format_rates(rates: Sequence[float]) -> str:
    return " ".join(f"{r:.6g}" for r in rates)


@dataclass(frozen=True)
class GateSettings:
    floor: float = 0.10
    alpha: float = DEFAULT_ALPHA
    load_tolerance: float = DEFAULT_LOAD_TOLERANCE


def min_p(n: int, m: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney U test can give for samples of
    ``n`` and ``m``: both extreme orderings, 2 / C(n + m, n)."""
    if n < 1 or m < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n + m, n))


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (scipy's exact method where it applies)."""
    return float(scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="auto").pvalue)


def judge(base: Speed, new: Speed, settings: GateSettings,
          cpus: tuple[str | None, str | None] = (None, None)) -> dict[str, Any]:
    """The throughput verdict of a cell group: see the module docstring.

    :return: ``base``, ``new`` (median runs), ``change`` (relative), ``threshold`` (the
        minimum effect), ``evidence`` (runs, repeats, windows), ``p`` (NaN when no test
        ran), ``verdict`` and ``reason``.
    """
    b, n = _median(base.runs), _median(new.runs)
    out: dict[str, Any] = {"base": b, "new": n, "change": math.nan,
                           "threshold": settings.floor, "evidence": "-", "p": math.nan,
                           "verdict": "n/a", "reason": "no ok seed on a side"}
    if not (math.isfinite(b) and math.isfinite(n)) or b <= 0:
        return out
    change = n / b - 1
    out.update(change=change)
    if abs(change) < settings.floor or change == 0:  # no change counts, even at a floor of 0
        return {**out, "verdict": "unchanged",
                "reason": f"within the minimum effect (±{100 * settings.floor:.0f}%)"}
    evidence, x, y = _samples(base, new, settings.alpha)
    out.update(evidence=evidence)
    if evidence == "too few":
        return {**out, "verdict": "inconclusive",
                "reason": f"too few samples: {len(base.runs)} and {len(new.runs)} runs, "
                          f"{len(base.windows)} and {len(new.windows)} windows (more seeds "
                          "or --repeats)"}
    p = mann_whitney(x, y)
    out.update(p=p)
    if not p < settings.alpha:
        return {**out, "verdict": "inconclusive",
                "reason": f"not significant ({TEST_NAME} p={p:.3g} on {len(x)} and {len(y)} "
                          f"{evidence}){_noisy_note(base, new)}"}
    if evidence == "windows":  # a change in the windows is not a change between runs
        return {**out, "verdict": "inconclusive",
                "reason": f"only windows differ ({TEST_NAME} p={p:.3g} on {len(x)} and "
                          f"{len(y)} windows){_noisy_note(base, new)}, and the windows of one "
                          f"process share its conditions; {len(base.runs)} and "
                          f"{len(new.runs)} runs cannot reach p < {settings.alpha:g}: more "
                          "seeds or --repeats"}
    if change > 0:
        return {**out, "verdict": "improved", "reason": f"{TEST_NAME} p={p:.3g}"}
    why = _machine_differs(base, new, n / b, settings.load_tolerance, cpus)
    if why:
        return {**out, "verdict": "inconclusive", "reason": why}
    return {**out, "verdict": "regressed",
            "reason": f"{TEST_NAME} p={p:.3g} on {len(x)} and {len(y)} {evidence}"}


def over_the_family(verdicts: Sequence[dict[str, Any]], alpha: float) -> list[dict[str, Any]]:
    """Holm's correction over the groups of one comparison whose runs were tested: a gate
    judges many groups at once, and at ``alpha`` each, identical reruns would fail it far
    more often than ``alpha`` (6 groups: up to 26 %). Each verdict gets ``p_holm`` (NaN where
    no runs were tested); a ``regressed`` or ``improved`` whose adjusted p is not below
    ``alpha`` becomes inconclusive, saying so."""
    tested = [v["evidence"] in ("runs", "repeats") and math.isfinite(v["p"]) for v in verdicts]
    adjusted = holm([v["p"] if t else math.nan for v, t in zip(verdicts, tested, strict=True)])
    m = sum(tested)
    out = []
    for v, q in zip(verdicts, adjusted, strict=True):
        v = {**v, "p_holm": q}
        if v["verdict"] in ("regressed", "improved") and math.isfinite(q) and not q < alpha:
            v.update(verdict="inconclusive",
                     reason=f"not significant over the {m} groups tested ({TEST_NAME} "
                            f"p={v['p']:.3g} on {v['evidence']}, {q:.3g} after Holm's "
                            "correction)")
        out.append(v)
    return out


def _samples(base: Speed, new: Speed, alpha: float) -> tuple[str, list[float], list[float]]:
    """Which samples to test: the runs when the test can reach ``alpha`` on them, else the
    windows (at least :data:`MIN_WINDOWS` a side), else none ("too few")."""
    if min_p(len(base.runs), len(new.runs)) < alpha:
        return ("repeats" if base.repeats or new.repeats else "runs"), base.runs, new.runs
    if min(len(base.windows), len(new.windows)) >= MIN_WINDOWS:
        return "windows", base.windows, new.windows
    return "too few", [], []


def _machine_differs(base: Speed, new: Speed, ratio: float, tolerance: float,
                     cpus: tuple[str | None, str | None]) -> str | None:
    """Why a slowdown to ``ratio`` of the base may be the machine's, not the code's."""
    if cpus[0] and cpus[1] and cpus[0] != cpus[1]:
        return f"the runs ran on different CPUs ({cpus[0]} and {cpus[1]})"
    s_base, s_new = _median(base.other_share), _median(new.other_share)
    if not (math.isfinite(s_base) and math.isfinite(s_new)):
        return None
    q = load_ratio(s_base, s_new)
    if q < 1 - tolerance and ratio >= q / 2:
        return (f"machine load differed: other processes took {100 * s_base:.0f}% of the "
                f"CPU time in the base and {100 * s_new:.0f}% in the new run, which can "
                f"explain a slowdown to {100 * q / 2:.0f}% (measured {100 * ratio:.0f}%)")
    return None


def load_ratio(s_base: float, s_new: float) -> float:
    """``q``: the CPU time other processes left free in the new run over the base's."""
    def free(s: float) -> float:
        return 1 - min(MAX_SHARE, max(0.0, s))
    return free(s_new) / free(s_base)


def _noisy_note(base: Speed, new: Speed) -> str:
    noise = max(_median(base.dispersion), _median(new.dispersion))
    return f"; noisy cells (dispersion ±{100 * noise:.0f}%)" \
        if math.isfinite(noise) and noise > NOISY else ""


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _median(values: Sequence[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else math.nan
