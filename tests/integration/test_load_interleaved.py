"""Months load by each record's own timestamp, wherever it sits in the partition (issue 16, item 1).

Push timestamps are not in offset order once extraction stamps a record's own surfacing time: one
partition of the real broker here holds January and February records interleaved. Each month's
load takes exactly its records, none twice, none skipped; a January record that reaches the topic
after January was loaded stops the next load (``LateRecordError``) until January is reloaded.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from listsource import ListConnector, rows
from pipeline_setup import pipeline_params

from connectors.base import ExtractContext
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.stages.load import LateRecordError, MonthGapError, run_load, unloaded_before
from schemas.errors import FatalError

JAN = datetime(2026, 1, 20, 4, tzinfo=UTC)
FEB = datetime(2026, 2, 10, 4, tzinfo=UTC)
MAR = datetime(2026, 3, 10, 4, tzinfo=UTC)
LOAD_AT = datetime(2026, 4, 1, 1, tzinfo=UTC)
TZ = "Asia/Shanghai"


def _events(n: int):
    ctx = ExtractContext(extracted_at=JAN, run_id="interleaved", batch_size=n)
    return [e for batch in ListConnector(rows(n)).batches({}, ctx) for e in batch.events]


@pytest.fixture
def valid(stack, uid, database_url, as_components):
    """An empty pipeline whose valid topic the test writes itself, with the timestamps it chooses."""
    topics = Topics(prefix=f"i{uid}.")
    p = pipeline_params(stack, database_url, topics, as_components)
    codec = bus.load_codecs(stack.registry_url, topics).valid
    producer = bus.idempotent_producer(stack.bootstrap_servers)

    def write(events, stamps):
        for event, at in zip(events, stamps, strict=True):
            producer.send(
                topics.valid,
                key=event.kafka_key,
                value=codec.encode(event.to_avro()),
                partition=0,  # one partition: the interleaving is within it
                timestamp_ms=int(at.timestamp() * 1000),
            )
        producer.flush()

    yield p, write
    producer.close()


def _stored(p) -> dict[str, set[str]]:
    engine = sa.create_engine(p["database_url"])
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT load_month, event_id FROM institution_events")).all()
    engine.dispose()
    out: dict[str, set[str]] = {}
    for month, event_id in found:
        out.setdefault(month, set()).add(event_id)
    return out


def test_interleaved_months_in_one_partition_load_exactly(valid):
    p, write = valid
    events = _events(24)
    # Jan, Feb, Jan, Feb, … in offset order; the same instant twice in a row now and then.
    stamps = [(JAN if i % 2 == 0 else FEB) + timedelta(minutes=i // 4) for i in range(24)]
    write(events, stamps)
    jan_ids = {e.event_id for e, at in zip(events, stamps, strict=True) if at.month == 1}
    feb_ids = {e.event_id for e, at in zip(events, stamps, strict=True) if at.month == 2}

    with pytest.raises(MonthGapError) as gap:  # February first: January's records sit among its own
        run_load(**p, month="2026-02", as_of=LOAD_AT)
    assert gap.value.gaps == ["2026-01"]
    assert _stored(p) == {}  # refused in the transaction: nothing stored

    jan = run_load(**p, month="2026-01", as_of=LOAD_AT)
    assert jan.records == 12 and jan.inserted == 12
    assert jan.offset_ranges[0] == (0, 24)  # scanned the whole partition, selected by timestamp
    feb = run_load(**p, month="2026-02", as_of=LOAD_AT)
    assert feb.records == 12 and feb.inserted == 12
    assert feb.offset_ranges[0] == (1, 24)  # the low-water: offset 0 was January's, loaded
    assert _stored(p) == {"2026-01": jan_ids, "2026-02": feb_ids}
    assert run_load(**p, month="2026-01", as_of=LOAD_AT).noop  # re-runs stay no-ops
    assert run_load(**p, month="2026-02", as_of=LOAD_AT).noop
    assert unloaded_before(p["bootstrap"], p["database_url"], p["topics"], "2026-03", TZ) == []

    # March opens; then a January record arrives after January was loaded (an old as-of, say).
    more = _events(30)[24:]
    write(more[:3], [MAR, MAR, MAR])
    write(more[3:4], [JAN + timedelta(hours=5)])
    with pytest.raises(LateRecordError, match="2026-01") as late:
        run_load(**p, month="2026-03", as_of=LOAD_AT)
    with pytest.raises(LateRecordError, match="offset=27"):  # a re-run of January says so too
        run_load(**p, month="2026-01", as_of=LOAD_AT)
    assert isinstance(late.value, FatalError) and late.value.late_month == "2026-01"
    assert "2026-03" not in _stored(p)
    again = run_load(**p, month="2026-01", as_of=LOAD_AT, replace=True)
    assert again.records == 13 and again.offset_ranges[0][0] == 0  # from January's own first offset
    assert run_load(**p, month="2026-03", as_of=LOAD_AT).records == 3
    stored = _stored(p)
    assert stored["2026-01"] == jan_ids | {more[3].event_id}
    assert stored["2026-02"] == feb_ids
    assert stored["2026-03"] == {e.event_id for e in more[:3]}
    assert sum(len(v) for v in stored.values()) == 28  # every record once


def test_a_month_without_records_among_others_loads_empty_and_keeps_the_low_water(valid):
    p, write = valid
    events = _events(6)
    write(events, [MAR, JAN, MAR, JAN, MAR, JAN])
    assert run_load(**p, month="2026-01", as_of=LOAD_AT).records == 3
    assert run_load(**p, month="2026-02", as_of=LOAD_AT).records == 0  # nothing in February
    march = run_load(**p, month="2026-03", as_of=LOAD_AT)
    assert march.records == 3 and march.offset_ranges[0] == (0, 6)  # March's first record is at 0


def test_a_load_killed_after_its_commit_leaves_the_low_water_behind_and_the_next_month_exact(valid):
    """SIGKILL between the load's commit and the low-water write: January is in, the low-water is
    not; February's load scans from further back, passes January's records by, loads its own."""
    import os
    import subprocess
    import sys
    import textwrap

    p, write = valid
    events = _events(10)
    stamps = [JAN if i % 2 else FEB for i in range(10)]  # February first in offset order
    write(events, stamps)
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from regsync.stages.load import run_load
        from regsync.kafka.topics import Topics
        run_load(
            bootstrap={p["bootstrap"]!r}, registry_url={p["registry_url"]!r},
            database_url={p["database_url"]!r}, topics=Topics(prefix={p["topics"].prefix!r}),
            month="2026-01", as_of=datetime(2026, 4, 1, 1, tzinfo=timezone.utc),
        )
        """
    )
    env = {**os.environ, "REGSYNC_CRASH_AT": "load.after_commit"}
    killed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert killed.returncode == -9, killed.stderr
    engine = sa.create_engine(p["database_url"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM load_low_water")).scalar_one() == 0
    engine.dispose()
    assert {m: len(ids) for m, ids in _stored(p).items()} == {"2026-01": 5}  # committed before the kill
    assert run_load(**p, month="2026-01", as_of=LOAD_AT).noop
    feb = run_load(**p, month="2026-02", as_of=LOAD_AT)
    assert feb.records == 5 and feb.offset_ranges[0] == (0, 10)
    assert {m: len(ids) for m, ids in _stored(p).items()} == {"2026-01": 5, "2026-02": 5}
