"""Peak RSS of each pipeline stage at a small and a ten-times larger month: does memory grow with N?

Issue 12 asks for peak RSS 1M ÷ 100k ≤ 1.2 per stage. A full 1M run of ``bench.run`` takes far
too long on the shared 2-core machine, so this is the cheaper proxy the ratio stands for: extract,
gate and load (each in a fresh interpreter, :func:`bench.run.run_stage`, peak RSS from ``wait4``)
at each of ``--sizes`` (default 50,000 and 500,000: the same tenfold step), each size on its own
topics and database. A stage whose memory holds per-record state grows with N;
one that holds a bounded window does not, whatever the absolute N.

    python -m bench.stage_memory [--sizes 50000 500000] [--state-dir DIR]   # DIR: reuse a stack

Writes ``bench/results/stage_memory.json`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import AS_OF, MONTH, PIPELINE, machine, prepare, run_stage, save_result, stop_watchdog
from regsync.settings import StackSettings
from regsync.stack.launcher import Stack


def sizes(stack: Stack, endpoints: Any, label: str, events: int, workdir: Path) -> dict[str, Any]:
    """Extract, gate and load ``events`` events; each stage's peak RSS, CPU and rate."""
    base = {**prepare(endpoints, label), "label": label, "events": events, "month": MONTH, "as_of": AS_OF}
    base["seed"] = 0
    out: dict[str, Any] = {}
    valid = events
    for stage in PIPELINE:
        cfg = {**base, "stage": stage}
        if stage == "load":
            cfg["expected"] = valid
        result = run_stage(stack, cfg, workdir)
        if stage == "gate":
            valid = int(result.figures["valid"])
        out[stage] = {
            "events": result.events,
            "peak_rss_mib": round(result.peak_rss_mib, 1),
            "cpu_s": round(result.cpu_s, 1),
            "seconds": round(result.seconds, 1),
            "events_per_s": round(result.rate),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[50_000, 500_000],
        help="events per run; ratios over the first",
    )
    parser.add_argument("--state-dir", type=Path, help="reuse the stack running there (else start one)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    from regsync.stack.watchdog import spawn_watchdog

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="regsync-bench-memory-") as tmp:
        workdir = Path(tmp)
        own = args.state_dir is None
        state_dir = workdir / "stack" if own else args.state_dir
        stack = Stack(StackSettings(state_dir=state_dir), report=lambda m: print(f"  stack: {m}", flush=True))
        watchdog = spawn_watchdog(os.getpid(), state_dir, purge=True) if own else None
        try:
            endpoints = stack.up()
            about = machine(stack, endpoints)
            figures = {}
            for events in args.sizes:
                print(f"== {events:,} events ==", flush=True)
                figures[str(events)] = sizes(stack, endpoints, f"mem{events}", events, workdir)
        finally:
            if own:
                stack.down(purge=True)
                if watchdog is not None:
                    stop_watchdog(watchdog)
    first = str(args.sizes[0])
    ratios = {
        size: {
            stage: round(figures[size][stage]["peak_rss_mib"] / figures[first][stage]["peak_rss_mib"], 3)
            for stage in PIPELINE
        }
        for size in figures
        if size != first
    }
    payload = {
        "benchmark": "peak RSS per stage as the month grows",
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": about,
        "parameters": {"sizes": args.sizes, "month": MONTH},
        "figures": figures,
        "peak_rss_over_first_size": ratios,
    }
    for stage in PIPELINE:
        line = "  ".join(
            f"{figures[size][stage]['peak_rss_mib']:6.1f} MiB at {int(size):,}" for size in figures
        )
        also = "  ".join(f"× {r[stage]:.2f} at {int(size):,}" for size, r in ratios.items())
        print(f"  {stage:<8} peak RSS {line}   ({also})", flush=True)
    if not args.no_save:
        save_result("stage_memory.json", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
