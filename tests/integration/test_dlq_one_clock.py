"""Both DLQ writers on one clock, through real Kafka: a month cut by push time holds them together.

The extraction pushes at 23:59:59.999 on 31 March (Beijing time). Its connector rejection (built with
``regsync.kafka.rejections.connector_rejection``, as extract is to send it) and the gate's rejection of
a raw record of the same push are judged in April by the wall clock, and both still belong to March.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from regsync.kafka import bus, rejections
from regsync.kafka.month_reader import read_month
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stages.dlq import DlqFilter, entries
from regsync.stages.gate import run_gate
from schemas.events import ErrorStage, RejectedRecord
from schemas.examples import canonical_event

pytestmark = pytest.mark.integration

AS_OF = datetime(2026, 3, 31, 15, 59, 59, 999000, tzinfo=UTC)  # 2026-03-31 23:59:59.999 Asia/Shanghai
TZ = "Asia/Shanghai"


def test_connector_and_gate_rejections_of_one_push_fall_in_its_month(stack, uid, database_url, as_components):
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    codecs = bus.load_codecs(stack.registry_url, topics)
    producer = bus.idempotent_producer(stack.bootstrap_servers)

    # extract: one row that could not become an event, one event that the gate will reject
    dlq = rejections.connector_rejection(
        source="minzheng",
        source_record_id="MZ-9",
        reason="JSON array body",
        raw=b"[1, 2]",
        run_id="extract-minzheng-x",
        raw_topic=topics.raw,
        as_of=AS_OF,
        connector_class="connectors.minzheng.MinzhengConnector",
    )
    producer.send(
        topics.rejected,
        key=dlq.key,
        value=codecs.rejected.encode(dlq.value.to_avro()),
        headers=dlq.headers,
        timestamp_ms=dlq.timestamp_ms,
    ).get(timeout=30)
    bad = canonical_event()
    bad = replace(bad, institution=replace(bad.institution, uscc="91350100M000100Y4X"), quality_warnings=())
    producer.send(
        topics.raw,
        key=bad.kafka_key,
        value=codecs.raw.encode(bad.to_avro()),
        headers=bus.headers([(bus.HEADER_SOURCE, "shichang"), (bus.HEADER_EVENT_ID, bad.event_id)]),
        timestamp_ms=rejections.millis(AS_OF),
    ).get(timeout=30)
    producer.close()

    run_gate(
        bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topics=topics,
    )  # judged now, by the wall clock: long after March

    found = list(entries(stack.bootstrap_servers, stack.registry_url, topics, DlqFilter(month="2026-03"), TZ))
    assert len(found) == 2
    assert not list(
        entries(stack.bootstrap_servers, stack.registry_url, topics, DlqFilter(month="2026-04"), TZ)
    )
    stages = set()
    for entry in found:
        record: RejectedRecord = entry.record
        assert entry.timestamp_ms == rejections.millis(AS_OF)
        assert record.error_context.rejected_at == AS_OF
        assert record.error_context.judged_at is not None and record.error_context.judged_at > AS_OF
        stages.add(record.error_context.stage)
    assert stages == {ErrorStage.TASK_POLL, ErrorStage.TRANSFORMATION}

    month = read_month(stack.bootstrap_servers, stack.registry_url, topics, "2026-03", TZ)
    assert len(month.rejected) == 2
    # the month reader still tells the writers apart, and pairs the gate's rejection with its raw record
    by_kind = {j.connector_dlq: j for j in month.rejected}
    assert set(by_kind) == {False, True}
    assert by_kind[True].raw_position is None
    assert by_kind[False].raw_position == (month.raw[0].partition, month.raw[0].offset)
