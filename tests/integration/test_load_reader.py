"""The load's reading process (regsync.stages.load_reader) under faults, through real Kafka and PostgreSQL.

A month of synthetic valid records is produced straight to the topic; the load reads it in a child
process. Killed mid-month, the child takes the load down with nothing stored, and the re-run stores
every event once; read in a thread instead (``read_in_process=False``), the store ends the same.
"""

from __future__ import annotations

import contextlib
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
from regsync.stages.load import run_load
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


def test_the_reader_killed_mid_month_fails_the_load_with_nothing_stored(month_on_topic, monkeypatch):
    """kill -9 of the reading process while the store is in its second chunk: the load raises
    (it does not end early with part of the month), nothing is stored, and a re-run loads every
    event exactly once."""
    p = month_on_topic
    readers: list[ProcessReader] = []
    killed: list[int] = []

    class Watched(ProcessReader):
        def __init__(self) -> None:
            super().__init__()
            readers.append(self)

    def kill_the_reader(name: str) -> None:  # the load's per-chunk hook, inside its transaction
        if name == "load.in_transaction" and not killed:
            pid = readers[0].pid
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    monkeypatch.setattr(load_module, "ProcessReader", Watched)
    monkeypatch.setattr(load_module, "crash_point", kill_the_reader)
    with pytest.raises(ReaderProcessError, match="exit code -9"):
        _load(p)
    assert killed and readers[0].exit_code == -signal.SIGKILL
    assert _stored(p["database_url"]) == (0, 0, 0, 0)

    monkeypatch.undo()
    again = _load(p)
    assert (again.records, again.inserted, again.duplicates) == (EVENTS, EVENTS, 0)
    events, distinct, institutions, manifests = _stored(p["database_url"])
    assert events == distinct == EVENTS and manifests == 1 and institutions == again.institutions_touched


def test_reading_in_a_thread_stores_what_reading_in_a_process_stores(month_on_topic):
    """``read_in_process=False`` reads in a thread: the same month must end as the same store, row for row."""
    p = month_on_topic
    engine = sa.create_engine(p["database_url"])

    def snapshot():
        with engine.connect() as conn:
            return {
                table: conn.execute(
                    sa.text(f"SELECT md5(string_agg(md5(t::text), '' ORDER BY t::text)) FROM {table} t")
                ).scalar_one()
                for table in ("institutions", "institution_events")
            }

    try:
        in_process = _load(p)
        stored = snapshot()
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE institution_events, institutions, load_manifests, load_low_water"))
        in_thread = _load(p, read_in_process=False)
        assert (in_thread.records, in_thread.checksum, in_thread.late) == (
            in_process.records,
            in_process.checksum,
            in_process.late,
        )
        assert snapshot() == stored
    finally:
        engine.dispose()


def test_no_reading_process_outlives_the_load_killed_mid_month(month_on_topic):
    """kill -9 of the load itself in its second chunk, while its reader is mid-month (it can be at
    most a few batches ahead): the reader goes too, and nothing is stored."""
    p = month_on_topic
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from regsync.stages.load import run_load
        from regsync.kafka.topics import Topics
        run_load(
            bootstrap={p["bootstrap"]!r}, registry_url={p["registry_url"]!r},
            database_url={p["database_url"]!r}, topics=Topics(prefix={p["topics"].prefix!r}, partitions=3),
            month={MONTH!r}, as_of=datetime(2025, 5, 1, tzinfo=timezone.utc),
            allow_unjudged=True, allow_gap=True,
        )
        """
    )
    env = {**os.environ, "REGSYNC_CRASH_AT": "load.in_transaction:2"}
    code, stderr, seen = run_noting_children([sys.executable, "-c", script], env)
    assert code == -9, stderr
    readers = [c for c in seen if _is_reader(c)]
    assert readers, "the load started no reading process"
    _, alive = psutil.wait_procs(seen, timeout=15)
    assert not alive, f"outlived the killed load: {alive}"
    assert _stored(p["database_url"]) == (0, 0, 0, 0)


def _is_reader(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return "load_reader import child_main" in " ".join(process.cmdline())
    return True  # gone before it could be asked: counted, and wait_procs finds it gone
