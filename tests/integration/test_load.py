"""The monthly load through real Kafka into PostgreSQL and SQLite: exactly once, by push month."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from listsource import ListConnector, rows
from pipeline_setup import pipeline_params
from process_watch import run_noting_children

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate
from regsync.stages.load import run_load
from schemas.errors import ConfigurationError

HERE = Path(__file__).parent
# 23:50 and 00:10 in Asia/Shanghai on either side of the January/February boundary.
LAST_OF_JAN = datetime(2026, 1, 31, 15, 50, tzinfo=UTC)
FIRST_OF_FEB = datetime(2026, 1, 31, 16, 10, tzinfo=UTC)
LOAD_AT = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def pipeline(request, stack, uid, database_url, tmp_path, as_components):
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    db = database_url if request.param == "postgresql" else f"sqlite:///{tmp_path / 'store.db'}"
    p = {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": db,
        "topics": topics,
    }
    data = rows(30)
    # Two pushes: rows 0-17 just before midnight of 31 January, rows 18-29 just after (Beijing time).
    run_extract(ListConnector(data[:18]), as_of=LAST_OF_JAN, batch_size=6, **p)
    run_extract(ListConnector(data), as_of=FIRST_OF_FEB, batch_size=6, **p)
    run_gate(**p, until_idle=True)
    return p


def _store(p):
    engine = sa.create_engine(p["database_url"])
    with engine.connect() as conn:
        events = conn.execute(
            sa.text("SELECT load_month, count(*) FROM institution_events GROUP BY load_month")
        ).all()
        institutions = conn.execute(sa.text("SELECT count(*) FROM institutions")).scalar_one()
        manifests = conn.execute(
            sa.text("SELECT month, records, checksum FROM load_manifests ORDER BY month")
        ).all()
    engine.dispose()
    return dict(events), institutions, [tuple(m) for m in manifests]


def test_months_follow_push_time_and_reruns_are_noops(pipeline):
    jan = run_load(**pipeline, month="2026-01", as_of=LOAD_AT)
    feb = run_load(**pipeline, month="2026-02", as_of=LOAD_AT)
    assert (jan.records, feb.records) == (18, 12)
    assert _store(pipeline)[0] == {"2026-01": 18, "2026-02": 12}
    before = _store(pipeline)
    again = run_load(**pipeline, month="2026-01", as_of=LOAD_AT)
    assert again.noop
    assert _store(pipeline) == before
    # Event date 2026-01-05 pushed in February: late.
    assert feb.late == 12
    assert jan.late == 0


def test_an_open_month_is_refused(pipeline):
    with pytest.raises(ConfigurationError, match="not over"):
        run_load(**pipeline, month="2026-02", as_of=datetime(2026, 2, 20, tzinfo=UTC))


@pytest.mark.slow
def test_load_killed_mid_transaction_leaves_nothing_and_rerun_is_exact(pipeline):
    p = pipeline
    script = textwrap.dedent(
        f"""
        from datetime import datetime, timezone
        from regsync.stages.load import run_load
        from regsync.kafka.topics import Topics
        run_load(
            bootstrap={p["bootstrap"]!r}, registry_url={p["registry_url"]!r},
            database_url={p["database_url"]!r}, topics=Topics(prefix={p["topics"].prefix!r}),
            month="2026-01", as_of=datetime(2026, 3, 1, 1, tzinfo=timezone.utc), chunk_size=5,
        )
        """
    )
    env = {**os.environ, "PYTHONPATH": str(HERE), "REGSYNC_CRASH_AT": "load.in_transaction:2"}
    # The load reads in a child process (load_reader): note every process the load starts while it
    # runs, so the test can see that none outlives the kill -9 of the load itself.
    code, stderr, started, _ = run_noting_children([sys.executable, "-c", script], env)
    assert code == -9, stderr
    assert started, "the load started no reading process"
    _, alive = psutil.wait_procs(started, timeout=15)
    assert not alive, f"outlived the killed load: {alive}"
    events, institutions, manifests = _store(p)
    assert (events, institutions, manifests) == ({}, 0, [])  # two chunks were written, none committed

    env.pop("REGSYNC_CRASH_AT")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    events, institutions, manifests = _store(p)
    assert events == {"2026-01": 18}
    assert institutions == 18
    assert len(manifests) == 1


def test_a_month_the_gate_has_not_judged_is_refused_until_it_has(stack, uid, database_url, as_components):
    """Issue: loading while the gate was still judging exited 0 with a partial month and no warning."""
    from regsync.stages.load import UnjudgedMonthError, unjudged

    topics = Topics(prefix=f"u{uid}.")
    p = pipeline_params(stack, database_url, topics, as_components)
    run_extract(ListConnector(rows(12)), as_of=LAST_OF_JAN, batch_size=4, **p)
    waiting = unjudged(stack.bootstrap_servers, topics, "2026-01", "Asia/Shanghai")
    assert sum(waiting.values()) == 12
    with pytest.raises(UnjudgedMonthError, match="12 raw records are not judged"):
        run_load(**p, month="2026-01", as_of=LOAD_AT)
    # The operator's override loads what is judged (nothing yet) and says so in the manifest counts.
    partial = run_load(**p, month="2026-01", as_of=LOAD_AT, allow_unjudged=True)
    assert partial.records == 0
    run_gate(**p, until_idle=True)
    assert unjudged(stack.bootstrap_servers, topics, "2026-01", "Asia/Shanghai") == {}
    full = run_load(**p, month="2026-01", as_of=LOAD_AT, replace=True)
    assert full.records == 12


def test_a_malformed_record_of_the_month_fails_the_load_loudly_and_stores_nothing(pipeline):
    """Decoding runs in the reading process: its error still reaches the caller as itself, and no
    thread or process is left."""
    import threading

    from schemas.codec import DecodeError

    p = pipeline
    producer = bus.idempotent_producer(p["bootstrap"])
    try:
        stamp = int(LAST_OF_JAN.timestamp() * 1000)
        producer.send(p["topics"].valid, key=b"x", value=b"not avro", partition=0, timestamp_ms=stamp).get(30)
    finally:
        producer.close()
    with pytest.raises(DecodeError) as failed:
        run_load(**p, month="2026-01", as_of=LOAD_AT)
    assert "raised in the load's reading process" in "\n".join(failed.value.__notes__)
    assert _store(p) == ({}, 0, [])
    assert not [t for t in threading.enumerate() if t.name == "load-read-ahead"]
    readers = [
        c for c in psutil.Process().children() if "load_reader import child_main" in " ".join(c.cmdline())
    ]
    assert not readers, "a reading process outlived the failed load"
