"""The monthly loader alone (no Kafka): events/s into SQLite and PostgreSQL, and memory that stays flat.

Feeds :func:`sink.loader.load_month` a synthetic month (:func:`sink.synthetic.synthetic_month`, six
partitions, generated lazily) and samples the RSS after every chunk: the growth between 20% of the
month and its end must stay small (the loader holds one chunk, not the month). Also reports how long
generating the events alone takes, so the loading rate can be read without it, and the time of the
first and the last fifth of the chunks (a store that slows as it fills shows here).

This is the measurement the unit/integration suites used to print (timing belongs here, not in
pass/fail tests). PostgreSQL: ``--database-url`` of an existing database, else a throwaway stack is
started and stopped. Run: ``.venv/bin/python -m bench.sink_load [--store sqlite|postgres|both]``;
writes ``bench/results/sink_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from sink.loader import load_month  # noqa: E402
from sink.store import create_engine, upgrade  # noqa: E402
from sink.synthetic import synthetic_month  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "sink_load.json"
SEED = 7
FLAT_BOUND_MIB = 64


def measure(url: str, store: str, n: int, chunk_size: int) -> dict[str, Any]:
    """Load ``n`` synthetic events into the store at ``url``; rates, RSS per chunk, flatness."""
    upgrade(url)
    engine = create_engine(url)
    proc = psutil.Process(os.getpid())
    rss: dict[int, int] = {}
    ticks: dict[int, float] = {}
    chunks = -(-n // chunk_size)

    def sample(i: int, records: int) -> None:
        rss[i] = proc.memory_info().rss
        ticks[i] = time.perf_counter()
        if (i + 1) % max(1, chunks // 10) == 0:
            print(f"  [{store}] {records:>9,} / {n:,}", file=sys.stderr, flush=True)

    began = time.perf_counter()
    for _ in synthetic_month(n, partitions=6, seed=SEED):
        pass
    generate_s = time.perf_counter() - began
    began = time.perf_counter()
    try:
        result = load_month(
            engine,
            month="2025-03",
            topic="registrations.valid",
            positioned=synthetic_month(n, partitions=6, seed=SEED),
            offset_ranges={p: (0, n) for p in range(6)},
            run_id=f"bench-{uuid.uuid4().hex[:8]}",
            chunk_size=chunk_size,
            on_chunk=sample,
        )
    finally:
        engine.dispose()
    seconds = time.perf_counter() - began
    if result.inserted != n or result.chunks != chunks:
        raise RuntimeError(f"{store}: inserted {result.inserted} of {n} in {result.chunks} chunks")
    fifth = max(1, chunks // 5)
    at = fifth - 1
    growth = max(v for i, v in rss.items() if i >= at) - rss[at]
    return {
        "store": store,
        "events": n,
        "chunk_size": chunk_size,
        "seconds": round(seconds, 2),
        "events_per_s": round(n / seconds),
        "generate_s": round(generate_s, 2),
        "loading_events_per_s": round(n / max(seconds - generate_s, 1e-9)),
        "first_fifth_s": round(ticks[at] - began, 2),
        "last_fifth_s": round(ticks[chunks - 1] - ticks[chunks - 1 - fifth], 2),
        "rss_at_fifth_mib": round(rss[at] / 2**20, 1),
        "rss_peak_mib": round(max(rss.values()) / 2**20, 1),
        "rss_growth_mib": round(growth / 2**20, 1),
        "memory_flat": growth < FLAT_BOUND_MIB * 2**20,
    }


@contextmanager
def postgres(database_url: str | None) -> Iterator[str]:
    """A fresh database: in the given server, else in a throwaway stack (stopped on the way out)."""
    import sqlalchemy as sa

    if database_url:
        yield database_url
        return
    from bench.run import stop_watchdog
    from regsync.settings import StackSettings
    from regsync.stack.launcher import Stack
    from regsync.stack.watchdog import spawn_watchdog

    with tempfile.TemporaryDirectory(prefix="regsync-bench-sink-") as tmp:
        stack = Stack(StackSettings(state_dir=Path(tmp)))
        watchdog = spawn_watchdog(os.getpid(), Path(tmp), purge=True)
        try:
            url = stack.up().database_url
            assert url is not None
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            name = f"bench_sink_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            yield url.rsplit("/", 1)[0] + f"/{name}"
        finally:
            stack.down(purge=True)
            stop_watchdog(watchdog)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--database-url", help="an existing PostgreSQL database (default: a throwaway stack)")
    args = parser.parse_args(argv)
    results = []
    if args.store in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="regsync-bench-sqlite-") as tmp:
            results.append(measure(f"sqlite:///{tmp}/store.db", "sqlite", args.events, args.chunk_size))
    if args.store in ("postgres", "both"):
        with postgres(args.database_url) as url:
            results.append(measure(url, "postgres", args.events, args.chunk_size))
    print(
        f"{'store':<10}{'events':>9}{'s':>8}{'events/s':>10}{'w/o gen':>10}{'1st 5th s':>10}{'last 5th s':>11}"
        f"{'RSS MiB':>9}{'growth':>8}  flat"
    )
    for r in results:
        print(
            f"{r['store']:<10}{r['events']:>9,}{r['seconds']:>8}{r['events_per_s']:>10,}"
            f"{r['loading_events_per_s']:>10,}{r['first_fifth_s']:>10}{r['last_fifth_s']:>11}"
            f"{r['rss_peak_mib']:>9}{r['rss_growth_mib']:>8}  {'yes' if r['memory_flat'] else 'NO'}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "sink_load",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "results": results,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0 if all(r["memory_flat"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
