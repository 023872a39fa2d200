"""The mutation score of each area of the numerical core, from mutmut's last run.

Run after ``mutmut run`` (``tox -e mutation`` runs both): reads ``mutmut results --all true``,
leaves out the mutants tests/mutation/equivalent.md lists as equivalent (each with its reason),
prints killed / (mutants − equivalent) per area and the survivors, and exits 1 when an area is
under :data:`REQUIRED`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REQUIRED = 0.90
AREAS = {
    "harness/report/stats.py": ("harness.report.stats.",),
    "harness/report/compare.py + gate.py": ("harness.report.compare.", "harness.report.gate."),
    "harness/results/ (records, tables, directory)": ("harness.results.",),
}
#: mutmut's words for a mutant the tests noticed (a timeout or a crash is noticed too).
KILLED = {"killed", "timeout", "segfault", "suspicious"}


def equivalent(path: Path) -> set[str]:
    """The mutant names listed in ``path`` (a line ``- `NAME`: reason``)."""
    if not path.is_file():
        return set()
    return set(re.findall(r"^- `([^`]+)`", path.read_text("utf-8"), flags=re.MULTILINE))


def main() -> int:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"],
                         capture_output=True, text=True, check=True).stdout
    status = dict(line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line)
    skip = equivalent(Path(__file__).with_name("equivalent.md"))
    failed = False
    for area, prefixes in AREAS.items():
        names = [n for n in status if n.startswith(prefixes)]
        counted = [n for n in names if n not in skip]
        by: dict[str, int] = defaultdict(int)
        for n in counted:
            by[status[n]] += 1
        killed = sum(by[s] for s in KILLED)
        score = killed / len(counted) if counted else 0.0
        failed |= score < REQUIRED
        detail = ", ".join(f"{v} {k}" for k, v in sorted(by.items()))
        print(f"{area}: {killed} of {len(counted)} killed = {100 * score:.1f}% "
              f"({len(names)} mutants, {len(names) - len(counted)} equivalent; {detail})")
        for n in counted:
            if status[n] not in KILLED:
                print(f"  {status[n]}: {n}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
