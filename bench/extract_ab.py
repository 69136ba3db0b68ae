"""Extract A/B: this tree against another source tree, interleaved, beside the raw-produce baseline.

Each trial runs :func:`bench.stages.extract` (``run_extract`` over the synthetic registrar) from one
tree in a fresh interpreter, on its own topics and database of a running stack; trials alternate
between the trees so a shared machine's load falls on both alike. After every pair, the
``raw_produce`` baseline re-sends the records just extracted with extract's producer settings (this
tree's ``bench.stages``), the transport limit ``bench.run`` divides by. Reported per trial: CPU
seconds per event net of the source's own CPU (the figure that survives a busy machine), the wall
rate net of the source's seconds, and both over the baseline of the same round.

    python -m bench.extract_ab --state-dir DIR --old-src DIR [--events 50000] [--rounds 3]
        [--batch-size 500] [--new-batch-size N]

``--old-src`` is e.g. ``git -C <main worktree> archive HEAD | tar -x -C /tmp/extract-main``. Writes
``bench/results/extract_ab.json`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.run import AS_OF, MONTH, ROOT, machine, prepare, save_result
from bench.stages import stage_peak_rss_mib
from regsync.settings import StackSettings
from regsync.stack.launcher import Stack


def stage(tree: Path, cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """One stage from ``tree`` in its own interpreter: its figures, CPU seconds (``wait4``) and peak RSS."""
    out = workdir / f"{cfg['label']}-{cfg['stage']}.json"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.stages", json.dumps({**cfg, "out": str(out)})],
        cwd=tree,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cfg['stage']} from {tree} failed ({os.waitstatus_to_exitcode(status)})")
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    figures["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    figures["peak_rss_mib"] = stage_peak_rss_mib(figures, usage)
    return figures


def trial(tree: Path, endpoints: Any, name: str, events: int, batch: int, workdir: Path) -> dict[str, Any]:
    """Extract ``events`` synthetic events from ``tree``; its figures per event, net of the source."""
    base = prepare(endpoints, name)
    cfg = {**base, "label": name, "events": events, "month": MONTH, "as_of": AS_OF, "seed": 0}
    f = stage(tree, {**cfg, "stage": "extract", "batch_size": batch}, workdir)
    net_s = f["seconds"] - f["source_seconds"]
    net_cpu = f["timed_cpu_s"] - f["source_cpu_s"]
    row = {
        "tree": name,
        "events": f["events"],
        "batch_size": batch,
        "seconds": round(f["seconds"], 2),
        "net_events_per_s": round(f["events"] / net_s),
        "net_cpu_us_per_event": round(1e6 * net_cpu / f["events"], 2),
        "source_cpu_us_per_event": round(1e6 * f["source_cpu_s"] / f["events"], 2),
        "peak_rss_mib": round(f["peak_rss_mib"], 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(
        f"  {name:<4} b={batch:<5} {row['net_events_per_s']:>7,}/s net   "
        f"CPU {row['net_cpu_us_per_event']:6.1f} µs/event net (source {row['source_cpu_us_per_event']:.1f})"
        f"   RSS {row['peak_rss_mib']:.0f} MiB   load {row['loadavg'][0]}",
        flush=True,
    )
    row["cfg"] = cfg
    return row


def baseline(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """``raw_produce`` (this tree) over the records one trial put on its raw topic."""
    f = stage(ROOT, {**cfg, "stage": "raw_produce"}, workdir)
    row = {
        "events_per_s": round(f["events"] / f["seconds"]),
        "cpu_us_per_event": round(1e6 * f["timed_cpu_s"] / f["events"], 2),
    }
    print(
        f"  raw produce  {row['events_per_s']:>7,}/s       CPU {row['cpu_us_per_event']:6.1f} µs/event",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="a running stack (never stopped here)")
    parser.add_argument("--old-src", type=Path, required=True, help="the other source tree (A)")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500, help="A's batch size (and B's by default)")
    parser.add_argument("--new-batch-size", type=int, help="B's batch size, if it differs")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    stack = Stack(StackSettings(state_dir=args.state_dir), report=lambda m: None)
    endpoints = stack.up()  # already running: only reads its endpoints
    about = machine(stack, endpoints)
    trees = {"old": args.old_src.resolve(), "new": ROOT}
    batches = {"old": args.batch_size, "new": args.new_batch_size or args.batch_size}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="regsync-extract-ab-") as tmp:
        workdir = Path(tmp)
        for number in range(args.rounds):
            order = ("old", "new") if number % 2 == 0 else ("new", "old")
            done = [trial(trees[t], endpoints, t, args.events, batches[t], workdir) for t in order]
            base = baseline(done[-1]["cfg"], workdir)
            for row in done:
                row.pop("cfg")
                row["raw_produce"] = base
                row["ratio_by_cpu"] = round(base["cpu_us_per_event"] / row["net_cpu_us_per_event"], 3)
                row["ratio_by_wall"] = round(row["net_events_per_s"] / base["events_per_s"], 3)
            rows += done
    summary = {
        t: {
            key: statistics.median(r[key] for r in rows if r["tree"] == t)
            for key in (
                "net_cpu_us_per_event",
                "net_events_per_s",
                "ratio_by_cpu",
                "ratio_by_wall",
                "peak_rss_mib",
            )
        }
        for t in ("old", "new")
    }
    print(json.dumps(summary, indent=2))
    if not args.no_save:
        payload = {
            "benchmark": "extract A/B against another source tree, with the raw-produce baseline",
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": about,
            "parameters": {"events": args.events, "rounds": args.rounds, "batch_size": batches},
            "trials": rows,
            "median": summary,
        }
        save_result("extract_ab.json", payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
