"""The gate through real Kafka transactions: one output per input, even across a SIGKILL."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer
from listsource import FaultyListConnector, rows
from pipeline_setup import pipeline_params

from regsync.kafka import bus, rejections
from regsync.kafka.topics import Topics
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate
from schemas import codec
from schemas.events import RegistrationEvent, RejectedRecord
from schemas.examples import canonical_event

AS_OF = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
CONNECT_HEADERS = (
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.connector.name",
    "__connect.errors.task.id",
    "__connect.errors.stage",
    "__connect.errors.class.name",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
)
"""The names Kafka Connect's DeadLetterQueueReporter writes (its optional stack trace aside)."""
HERE = Path(__file__).parent


@pytest.fixture
def pipeline(stack, uid, database_url, as_components):
    return pipeline_params(stack, database_url, Topics(prefix=f"t{uid}."), login=as_components)


def _outputs(p):
    """Map raw (partition, offset) → list of outputs found on valid and rejected."""
    codecs = bus.load_codecs(p["registry_url"], p["topics"])
    found: dict[tuple[int, int], list[tuple[str, object]]] = {}
    for r in bus.scan(p["bootstrap"], p["topics"].valid, {}):
        key = (int(bus.header(r, "regsync.raw_partition")), int(bus.header(r, "regsync.raw_offset")))
        found.setdefault(key, []).append(
            ("valid", RegistrationEvent.from_avro(codecs.valid.decode(r.value)), r)
        )
    for r in bus.scan(p["bootstrap"], p["topics"].rejected, {}):
        key = (
            int(bus.header(r, "__connect.errors.partition")),
            int(bus.header(r, "__connect.errors.offset")),
        )
        found.setdefault(key, []).append(
            ("rejected", RejectedRecord.from_avro(codecs.rejected.decode(r.value)), r)
        )
    return found


def _raw_positions(p):
    return {(r.partition, r.offset): r for r in bus.scan(p["bootstrap"], p["topics"].raw, {})}


def test_gate_routes_every_record_once_with_reasons(pipeline):
    run_extract(FaultyListConnector(rows(40)), as_of=AS_OF, batch_size=10, **pipeline)
    # A record that is not Avro at all must reach the DLQ too, not crash the gate.
    producer = KafkaProducer(**bus.security("admin"), bootstrap_servers=pipeline["bootstrap"], acks="all")
    producer.send(pipeline["topics"].raw, key=b"garbage", value=b"\x00\x00\x00\x00\x01not avro").get(30)
    producer.close()

    counts = run_gate(**pipeline, until_idle=True, max_records=16)
    assert gc.get_freeze_count() == 0  # the run's gc.freeze() is undone when it ends
    raw = _raw_positions(pipeline)
    assert counts.consumed == len(raw) == 41
    assert counts.valid + counts.rejected == counts.consumed

    outputs = _outputs(pipeline)
    assert set(outputs) == set(raw)
    assert all(len(v) == 1 for v in outputs.values())
    rejected = {k: v[0] for k, v in outputs.items() if v[0][0] == "rejected"}
    # rows 0,5,10,…,35 (check digit) and 0,7,14,…,35 (name) → 12 distinct rows, plus the garbage
    assert len(rejected) == 13
    rules = Counter(r for _, rec, _ in rejected.values() for r in {v.rule_id for v in rec.violations})
    assert rules["USCC_CHECK_DIGIT"] == 8
    assert rules["REQUIRED_FIELD"] == 6
    assert rules["SCHEMA_INVALID"] == 1
    # Outputs keep the raw record's timestamp: the moment it was pushed, which month windows use.
    for kind, _rec, record in (v[0] for v in outputs.values()):
        if record.key != b"garbage":
            assert record.timestamp == int(AS_OF.timestamp() * 1000), kind
    for _, rec, record in rejected.values():
        assert bus.header(record, "__connect.errors.topic") == pipeline["topics"].raw
        # One clock: rejected_at is the record timestamp (the push instant), not the gate's wall clock.
        assert rejections.millis(rec.error_context.rejected_at) == record.timestamp
        assert rec.error_context.judged_at is not None
        assert rec.error_context.judged_at > rec.error_context.rejected_at
        # Kafka Connect's full DLQ header set, and the rule ids as repeated headers.
        names = [k for k, _ in record.headers]
        for name in CONNECT_HEADERS:
            assert names.count(name) == 1, name
        assert "regsync.rule_ids" not in names
        rule_ids = [v.decode() for k, v in record.headers if k == "regsync.rule_id"]
        assert rule_ids == sorted({v.rule_id for v in rec.violations if v.severity.value == "REJECT"})
        assert rejections.rule_ids_from_headers(record.headers) == tuple(rule_ids)
        assert bus.header(record, "__connect.errors.connector.name") == "regsync-gate"
        assert bus.header(record, "__connect.errors.task.id") == "0"
        stage = bus.header(record, "__connect.errors.stage")
        assert rec.error_context.stage is not None and stage == rec.error_context.stage.value
        if record.key == b"garbage":
            assert stage == "VALUE_CONVERTER"
            assert bus.header(record, "__connect.errors.class.name") == "schemas.codec.AvroCodec"
            assert bus.header(record, "__connect.errors.exception.class.name").startswith("schemas.codec.")
        else:
            assert stage == "TRANSFORMATION"
            assert bus.header(record, "__connect.errors.class.name") == "quality.record_checks.evaluate_many"
            assert (
                bus.header(record, "__connect.errors.exception.class.name")
                == "quality.record_checks.RuleRejection"
            )
            message = bus.header(record, "__connect.errors.exception.message")
            assert all(rule_id in message for rule_id in rule_ids)


def test_a_valid_record_the_gate_leaves_unchanged_is_published_as_its_raw_bytes(pipeline):
    """Issue 12's pass-through on the real registry: same Avro body, framed with valid's id."""
    codecs = bus.load_codecs(pipeline["registry_url"], pipeline["topics"])
    base = canonical_event()
    clean = replace(base, quality_warnings=(), extracted_at=datetime(2025, 3, 31, 8, 0, tzinfo=UTC))
    warned = replace(clean, event_id="00000000-0000-0000-0000-000000000002")
    warned = replace(warned, extracted_at=datetime(2025, 5, 2, 8, 0, tzinfo=UTC))  # LATE_PUSH: changed
    producer = KafkaProducer(**bus.security("admin"), bootstrap_servers=pipeline["bootstrap"], acks="all")
    for event in (clean, warned):
        producer.send(
            pipeline["topics"].raw, key=event.kafka_key, value=codecs.raw.encode(event.to_wire())
        ).get(30)
    producer.close()

    counts = run_gate(**pipeline, until_idle=True)
    assert (counts.valid, counts.rejected) == (2, 0)
    raw = _raw_positions(pipeline)
    published = {}
    for position, found in _outputs(pipeline).items():
        ((kind, event, record),) = found
        assert kind == "valid" and codec.read_header(record.value) == codecs.valid.schema_id
        published[event.event_id] = (event, record.value, raw[position].value)
    event, value, source = published[clean.event_id]
    assert event == clean
    assert value[codec.HEADER_SIZE :] == source[codec.HEADER_SIZE :]
    event, value, source = published[warned.event_id]
    assert [w.rule_id for w in event.quality_warnings] == ["LATE_PUSH"]
    assert value[codec.HEADER_SIZE :] != source[codec.HEADER_SIZE :]
    assert event.with_warnings(()) == warned


@pytest.mark.slow
def test_gate_killed_mid_transaction_then_restarted_yields_exactly_one_output_each(pipeline):
    run_extract(FaultyListConnector(rows(60)), as_of=AS_OF, batch_size=20, **pipeline)
    script = textwrap.dedent(
        f"""
        from regsync.stages.gate import run_gate
        from regsync.kafka.topics import Topics
        run_gate(
            bootstrap={pipeline["bootstrap"]!r},
            registry_url={pipeline["registry_url"]!r},
            database_url={pipeline["database_url"]!r},
            topics=Topics(prefix={pipeline["topics"].prefix!r}),
            until_idle=True,
            max_records=7,
        )
        """
    )
    env = {**os.environ, "PYTHONPATH": str(HERE), "REGSYNC_CRASH_AT": "gate.before_commit:3"}
    killed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert killed.returncode == -9, killed.stderr
    partial = _outputs(pipeline)
    assert 0 < len(partial) < 60  # two transactions committed, the third was open when killed

    env.pop("REGSYNC_CRASH_AT")
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr

    raw = _raw_positions(pipeline)
    outputs = _outputs(pipeline)
    assert set(outputs) == set(raw)
    doubled = {k: len(v) for k, v in outputs.items() if len(v) != 1}
    assert doubled == {}
