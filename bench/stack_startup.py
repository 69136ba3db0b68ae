"""Cold and warm start time and resident memory of each stack component.

Cold: an empty state folder (initdb, Kafka storage format, a new registry store). Warm: the same
folder after ``down``. Run: ``.venv/bin/python bench/stack_startup.py``; prints a table and JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from regsync.settings import StackSettings
from regsync.stack.launcher import Stack


def main() -> None:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="regsync-bench-") as tmp:
        stack = Stack(StackSettings(state_dir=Path(tmp)))
        try:
            _measure(stack, results)
        finally:
            stack.down(purge=True)  # never leave JVMs behind, even when a start fails
    _print(results)


def _measure(stack: Stack, results: dict[str, dict[str, float]]) -> None:
    for phase in ("cold", "warm"):
        began = time.monotonic()
        stack.timing.start.clear()
        stack.up()
        total = time.monotonic() - began
        time.sleep(2)  # let the JVMs settle before reading memory (a measurement, not a test)
        for st in stack.status():
            row = results.setdefault(st.name, {})
            row[f"{phase}_start_s"] = round(stack.timing.start.get(st.name, float("nan")), 2)
            row[f"{phase}_rss_mib"] = round(st.rss_mb or 0.0, 1)
        results.setdefault("_total", {})[f"{phase}_up_s"] = round(total, 2)
        stack.down(purge=False)


def _print(results: dict[str, dict[str, float]]) -> None:
    print(f"{'component':<16}{'cold start s':>14}{'warm start s':>14}{'RSS MiB':>10}")
    for name, row in results.items():
        if name.startswith("_"):
            continue
        print(f"{name:<16}{row['cold_start_s']:>14}{row['warm_start_s']:>14}{row['warm_rss_mib']:>10}")
    print(f"whole stack up: cold {results['_total']['cold_up_s']} s, warm {results['_total']['warm_up_s']} s")
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
