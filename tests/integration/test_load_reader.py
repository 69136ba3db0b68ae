"""The load's reading process (regsync.stages.load_reader) under faults, through real Kafka and PostgreSQL.

A month of synthetic valid records is produced straight to the topic; the load reads it in a child
process. Killed mid-month, the child takes the load down with nothing stored, and the re-run stores
every event once; read in a thread instead (``read_in_process=False``), the store ends the same.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from datetime import UTC, datetime

import psutil
import pytest
import sqlalchemy as sa
from pipeline_setup import pipeline_params
from process_watch import run_noting_children

import regsync.stages.load as load_module
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.stages.load import LoadProgress, MonthGapError, run_load
from regsync.stages.load_reader import ProcessReader, ReaderProcessError
from sink.synthetic import synthetic_month

MONTH = "2025-03"
LOAD_AT = datetime(2025, 5, 1, tzinfo=UTC)
EVENTS = 20_000


@pytest.fixture
def month_on_topic(stack, uid, database_url, as_components):
    """``EVENTS`` valid records of March 2025 on a fresh valid topic (three partitions)."""
    topics = Topics(prefix=f"r{uid}.", partitions=3)
    p = pipeline_params(stack, database_url, topics, as_components)
    codec = bus.load_codecs(stack.registry_url, topics).valid
    producer = bus.idempotent_producer(stack.bootstrap_servers)
    try:
        for rec in synthetic_month(EVENTS, partitions=3, seed=41, month=MONTH):
            producer.send(
                topics.valid,
                key=rec.event.institution.uscc.encode(),
                value=codec.encode(rec.event.to_avro()),
                partition=rec.partition,
                timestamp_ms=rec.timestamp_ms,
            )
        producer.flush()
    finally:
        producer.close()
    return p


def _stored(database_url):
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM institution_events), (SELECT count(DISTINCT event_id) "
                    "FROM institution_events), (SELECT count(*) FROM institutions), "
                    "(SELECT count(*) FROM load_manifests)"
                )
            ).one()
    finally:
        engine.dispose()


def _load(p, **kw):
    return run_load(**p, month=MONTH, as_of=LOAD_AT, allow_unjudged=True, allow_gap=True, **kw)


@pytest.mark.parametrize("victim", [0, 1])
def test_a_reader_killed_mid_month_fails_the_load_with_nothing_stored(month_on_topic, monkeypatch, victim):
    """kill -9 of one of the two reading processes while the store is in its second chunk: the load
    raises (it does not end early with part of the month), the other reader is stopped too, nothing
    is stored, and a re-run loads every event exactly once."""
    p = month_on_topic
    readers: list[ProcessReader] = []
    killed: list[int] = []

    class Watched(ProcessReader):
        def __init__(self) -> None:
            super().__init__()
            readers.append(self)

    def kill_a_reader(name: str) -> None:  # the load's per-chunk hook, inside its transaction
        if name == "load.in_transaction" and not killed:
            pid = readers[victim].pid
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    monkeypatch.setattr(load_module, "ProcessReader", Watched)
    monkeypatch.setattr(load_module, "crash_point", kill_a_reader)
    with pytest.raises(ReaderProcessError, match="exit code -9"):
        _load(p, read_processes=2)
    assert len(readers) == 2 and killed and readers[victim].exit_code == -signal.SIGKILL
    assert readers[1 - victim].exit_code is not None, "the other reader outlived the failed load"
    assert _stored(p["database_url"]) == (0, 0, 0, 0)

    monkeypatch.undo()
    again = _load(p)
    assert (again.records, again.inserted, again.duplicates) == (EVENTS, EVENTS, 0)
    events, distinct, institutions, manifests = _stored(p["database_url"])
    assert events == distinct == EVENTS and manifests == 1 and institutions == again.institutions_touched


def test_one_thread_or_any_number_of_reading_processes_store_the_same(month_on_topic):
    """The same month read in a thread (``read_in_process=False``), by one process, by two (three
    partitions dealt 2 + 1) and by five (more than the partitions: two stop at once)
    must end as the same store, row for row, with the same checksum; the progress it reports grows
    to every record, within the offsets the scan covers."""
    p = month_on_topic
    engine = sa.create_engine(p["database_url"])

    def snapshot():
        with engine.connect() as conn:
            stored = {
                table: conn.execute(
                    sa.text(f"SELECT md5(string_agg(md5(t::text), '' ORDER BY t::text)) FROM {table} t")
                ).scalar_one()
                for table in ("institutions", "institution_events")
            }
            # where the next load starts: every reader's partitions, each at its end (all loaded)
            stored["low_water"] = dict(
                conn.execute(sa.text('SELECT "partition", next_offset FROM load_low_water')).all()
            )
        return stored

    def reset():
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE institution_events, institutions, load_manifests, load_low_water"))

    try:
        seen: list[LoadProgress] = []
        first = _load(p, progress=seen.append)
        stored = snapshot()
        assert stored["low_water"] == bus.end_offsets(p["bootstrap"], p["topics"].valid, "test")
        assert [at.stored for at in seen] == sorted({at.stored for at in seen}), "progress went back"
        assert seen[-1].stored == first.records == EVENTS and seen[-1].span >= EVENTS
        assert seen[-1].month == MONTH and len(seen) == first.chunks
        for how in (
            {"read_in_process": False},
            {"read_processes": 1},
            {"read_processes": 2},
            {"read_processes": 5},
        ):
            reset()
            again = _load(p, **how)
            assert (again.records, again.checksum, again.late) == (
                first.records,
                first.checksum,
                first.late,
            ), how
            assert snapshot() == stored, how
    finally:
        engine.dispose()


def test_a_month_gap_seen_by_two_readers_names_both_months(stack, uid, database_url, as_components):
    """An older unloaded month on a partition of each reader: one MonthGapError names both months
    (each reader sees only its own), and nothing is stored."""
    topics = Topics(prefix=f"g{uid}.", partitions=2)
    p = pipeline_params(stack, database_url, topics, as_components)
    codec = bus.load_codecs(stack.registry_url, topics).valid
    older = {0: datetime(2025, 1, 15, tzinfo=UTC), 1: datetime(2025, 2, 15, tzinfo=UTC)}
    producer = bus.idempotent_producer(stack.bootstrap_servers)
    try:
        for rec in synthetic_month(40, partitions=2, seed=5, month=MONTH):
            when = older.pop(rec.partition, None)  # the first record of each partition: an older month
            producer.send(
                topics.valid,
                key=rec.event.institution.uscc.encode(),
                value=codec.encode(rec.event.to_avro()),
                partition=rec.partition,
                timestamp_ms=rec.timestamp_ms if when is None else int(when.timestamp() * 1000),
            )
        producer.flush()
    finally:
        producer.close()
    with pytest.raises(MonthGapError) as refused:
        run_load(**p, month=MONTH, as_of=LOAD_AT, allow_unjudged=True, read_processes=2)
    assert refused.value.gaps == ["2025-01", "2025-02"]
    assert _stored(p["database_url"]) == (0, 0, 0, 0)


def test_no_reading_process_outlives_the_load_killed_mid_month(month_on_topic):
    """kill -9 of the load itself in its second chunk, while its two readers are mid-month (each can
    be at most a few batches ahead): the readers go too, and nothing is stored."""
    p = month_on_topic
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from regsync.stages.load import LoadProgress, MonthGapError, run_load
        from regsync.kafka.topics import Topics
        run_load(
            bootstrap={p["bootstrap"]!r}, registry_url={p["registry_url"]!r},
            database_url={p["database_url"]!r}, topics=Topics(prefix={p["topics"].prefix!r}, partitions=3),
            month={MONTH!r}, as_of=datetime(2025, 5, 1, tzinfo=timezone.utc),
            allow_unjudged=True, allow_gap=True, read_processes=2,
        )
        """
    )
    env = {**os.environ, "REGSYNC_CRASH_AT": "load.in_transaction:2"}
    code, stderr, seen, cmdlines = run_noting_children([sys.executable, "-c", script], env)
    assert code == -9, stderr
    readers = [c for c in seen if "load_reader import child_main" in cmdlines.get(c.pid, "")]
    assert len(readers) == 2, f"the load started {len(readers)} reading processes, not 2"
    _, alive = psutil.wait_procs(seen, timeout=15)
    assert not alive, f"outlived the killed load: {alive}"
    assert _stored(p["database_url"]) == (0, 0, 0, 0)
