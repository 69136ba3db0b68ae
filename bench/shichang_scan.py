"""Scan rate of the 市场监管 connector over one big exchange day file.

Writes a GB18030 day file of 1,000,000 rows (``--rows``; ``--ten-million`` for 10M) with one childcare
row per ``--ratio`` filler rows (50 by default, as the simulator), then times one connector run over it:
the marker check (sha256 + line count) and the streaming scan, events built and batched as in
production (batch size 500), ``--repeat`` times (3) from an empty state. Reports the best and median
wall-clock rows/s and the CPU seconds of the best run (other processes on a shared machine slow the
wall clock, not the CPU figure), childcare events found, and peak RSS (``ru_maxrss``).
Target: ≥ 200,000 rows/s. ``--profile`` runs one scan under cProfile and prints the top functions.

Run: ``.venv/bin/python bench/shichang_scan.py``; prints a table, writes ``bench/results/shichang_scan.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from connectors.base import ExtractContext
from connectors.shichang import ShichangConnector
from simulators.shichang_files import write_bulk_day

RESULTS = Path(__file__).parent / "results" / "shichang_scan.json"
TARGET_ROWS_PER_S = 200_000


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scan(folder: Path) -> tuple[int, int, int, float, float]:
    """One connector run: (rows scanned, events, batches, wall seconds, CPU seconds)."""
    connector = ShichangConnector(folder)
    ctx = ExtractContext(datetime(2026, 1, 6, tzinfo=UTC), "bench", batch_size=500)
    events = batches = 0
    began, cpu = time.perf_counter(), time.process_time()
    for batch in connector.batches({}, ctx):
        events += len(batch.events)
        batches += 1
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return connector.report.rows_scanned, events, batches, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ten-million", action="store_true", help="also scan a 10,000,000-row file")
    parser.add_argument("--ratio", type=int, default=50, help="filler rows per childcare row")
    parser.add_argument("--repeat", type=int, default=3, help="scans per file (best and median reported)")
    parser.add_argument("--profile", action="store_true", help="cProfile one scan instead of timing")
    args = parser.parse_args()
    sizes = [args.rows] + ([10_000_000] if args.ten_million else [])
    results: list[dict[str, object]] = []
    for rows in sizes:
        with tempfile.TemporaryDirectory(prefix="regsync-shichang-bench-") as tmp:
            began = time.perf_counter()
            written = write_bulk_day(Path(tmp), date(2026, 1, 5), rows, filler_per_childcare=args.ratio)
            write_s = time.perf_counter() - began
            if args.profile:
                profiler = cProfile.Profile()
                profiler.runcall(scan, Path(tmp))
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
                return
            runs = [scan(Path(tmp)) for _ in range(args.repeat)]
        scanned, events, batches, seconds, cpu = min(runs, key=lambda run: run[3])
        assert scanned == rows, f"scanned {scanned} of {rows} rows"
        assert events == written.childcare_rows, f"found {events} of {written.childcare_rows} childcare rows"
        median = statistics.median(run[3] for run in runs)
        results.append(
            {
                "rows": rows,
                "file_mib": round(written.bytes / 2**20, 1),
                "filler_per_childcare": args.ratio,
                "write_s": round(write_s, 2),
                "scan_s": round(seconds, 2),
                "scan_cpu_s": round(cpu, 2),
                "rows_per_s": round(rows / seconds),
                "rows_per_s_median": round(rows / median),
                "rows_per_cpu_s": round(rows / cpu),
                "repeats": len(runs),
                "mib_per_s": round(written.bytes / 2**20 / seconds, 1),
                "childcare_events": events,
                "batches": batches,
                "peak_rss_mib": round(peak_rss_mib(), 1),
                "meets_target": rows / seconds >= TARGET_ROWS_PER_S,
            }
        )
    print(
        f"{'rows':>12}{'file MiB':>10}{'write s':>9}{'scan s':>8}{'rows/s':>10}{'median':>10}"
        f"{'per CPU s':>11}{'events':>9}{'peak RSS MiB':>14}"
    )
    for r in results:
        print(
            f"{r['rows']:>12,}{r['file_mib']:>10}{r['write_s']:>9}{r['scan_s']:>8}{r['rows_per_s']:>10,}"
            f"{r['rows_per_s_median']:>10,}{r['rows_per_cpu_s']:>11,}{r['childcare_events']:>9,}"
            f"{r['peak_rss_mib']:>14}"
        )
    print(
        f"target ≥ {TARGET_ROWS_PER_S:,} rows/s: {'met' if all(r['meets_target'] for r in results) else 'MISSED'}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "shichang_scan",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "results": results,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
