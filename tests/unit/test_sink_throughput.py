"""Informational: load throughput on SQLite for 100k events, and RSS flat between 20k and 100k.

Printed, not asserted tightly — targets belong to ``bench/`` — except that memory must not grow
with the month (a generous bound, far below what holding 80k events would take).
"""

from __future__ import annotations

import os
import time

import psutil
import pytest

from sink.loader import load_month
from sink.store import create_engine, upgrade
from sink.synthetic import synthetic_month

pytestmark = pytest.mark.slow
SEED = 7


def test_sqlite_throughput_and_flat_memory(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = create_engine(url)
    n, rss = 100_000, {}
    proc = psutil.Process(os.getpid())

    ticks = {}

    def sample(i):
        rss[i] = proc.memory_info().rss
        ticks[i] = time.perf_counter()

    gen_started = time.perf_counter()
    for _ in synthetic_month(n, partitions=6, seed=SEED):
        pass
    gen_s = time.perf_counter() - gen_started

    started = time.perf_counter()
    result = load_month(
        engine,
        month="2025-03",
        topic="registrations.valid",
        positioned=synthetic_month(n, partitions=6, seed=SEED),
        offset_ranges={p: (0, n) for p in range(6)},
        run_id="bench",
        on_chunk=sample,
    )
    elapsed = time.perf_counter() - started
    engine.dispose()
    growth = max(rss[i] for i in rss if i >= 19) - rss[19]
    first, last = ticks[19] - started, ticks[99] - ticks[79]
    with capsys.disabled():
        print(
            f"\n[sink/sqlite] {n} events in {elapsed:.1f}s = {n / elapsed:,.0f} events/s; "
            f"RSS at 20k {rss[19] / 2**20:.1f} MiB, peak 20k..100k {max(rss.values()) / 2**20:.1f} MiB, "
            f"growth {growth / 2**20:.1f} MiB; generating the events alone {gen_s:.1f}s, so loading "
            f"{n / (elapsed - gen_s):,.0f} events/s; first 20k {first:.1f}s, last 20k {last:.1f}s"
        )
    assert result.inserted == n and result.chunks == 100
    assert growth < 64 * 2**20, "memory must stay flat as the month grows"
