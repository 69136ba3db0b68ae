"""DLQ records of both writers: Kafka Connect's header set, repeated rule ids (old form still read), one clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quality.record_checks import RuleRejection, evaluate
from regsync.kafka import headers
from regsync.kafka.rejections import (
    RAW_COPY_LIMIT,
    Origin,
    connector_rejection,
    dlq_headers,
    millis,
    rule_ids_from_headers,
)
from schemas.codec import AvroCodec
from schemas.contracts import REJECTED_RECORD, get_contract
from schemas.events import ErrorStage, RejectedRecord
from schemas.examples import canonical_event, with_value

AS_OF = datetime(2026, 3, 31, 15, 59, 59, 999000, tzinfo=UTC)  # 23:59:59.999 Beijing, last of March

CONNECT = [
    "__connect.errors.topic",
    "__connect.errors.partition",
    "__connect.errors.offset",
    "__connect.errors.connector.name",
    "__connect.errors.task.id",
    "__connect.errors.stage",
    "__connect.errors.class.name",
    "__connect.errors.exception.class.name",
    "__connect.errors.exception.message",
]


def _text(hdrs) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in hdrs:
        out.setdefault(key, []).append(value.decode("utf-8"))
    return out


def test_header_names_are_kafka_connects():
    assert [
        headers.ERRORS_TOPIC,
        headers.ERRORS_PARTITION,
        headers.ERRORS_OFFSET,
        headers.ERRORS_CONNECTOR_NAME,
        headers.ERRORS_TASK_ID,
        headers.ERRORS_STAGE,
        headers.ERRORS_CLASS_NAME,
        headers.ERRORS_EXCEPTION_CLASS,
        headers.ERRORS_EXCEPTION_MESSAGE,
    ] == CONNECT
    assert headers.ERRORS_EXCEPTION_STACKTRACE == "__connect.errors.exception.stacktrace"


def test_gate_style_headers_carry_the_full_set_and_one_header_per_rule():
    verdict = evaluate(with_value(canonical_event(), "institution.uscc", "X" * 19))
    error = verdict.error()
    assert isinstance(error, RuleRejection) and len(error.rule_ids) >= 2
    hdrs = dlq_headers(
        origin=Origin("registrations.raw", 2, 41),
        connector_name="regsync-gate",
        task_id=1,
        stage=ErrorStage.TRANSFORMATION,
        executing_class="quality.record_checks.evaluate_many",
        error=error,
        rule_ids=error.rule_ids,
        extra=((headers.GATE_RUN_ID, "gate-1"),),
        kept=[
            ("regsync.source", b"shichang"),
            ("regsync.rule_ids", b"OLD_RULE"),  # a replay's stale verdict is not carried over
            ("regsync.rule_id", b"OLD_RULE"),
            ("regsync.gate_run_id", b"gate-0"),
            ("other", b"x"),
        ],
    )
    text = _text(hdrs)
    for name in CONNECT:
        assert len(text[name]) == 1, name
    assert text["__connect.errors.partition"] == ["2"] and text["__connect.errors.offset"] == ["41"]
    assert text["__connect.errors.exception.class.name"] == ["quality.record_checks.RuleRejection"]
    assert text["regsync.rule_id"] == sorted(error.rule_ids)
    assert "regsync.rule_ids" not in text and "other" not in text
    assert text["regsync.gate_run_id"] == ["gate-1"]
    assert text["regsync.source"] == ["shichang"]
    assert "__connect.errors.exception.stacktrace" not in text


def test_exception_message_is_masked_and_bounded():
    hdrs = dlq_headers(
        origin=Origin("t"),
        connector_name="c",
        task_id=0,
        stage=ErrorStage.VALUE_CONVERTER,
        executing_class=AvroCodec.__qualname__,
        error=ValueError("bad id 110105199003071234 phone 13812345678 " + "x" * 5000),
    )
    message = _text(hdrs)["__connect.errors.exception.message"][0]
    assert "110105199003071234" not in message and "13812345678" not in message
    assert len(message) <= 2000
    assert _text(hdrs)["__connect.errors.exception.class.name"] == ["builtins.ValueError"]


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ([("regsync.rule_id", b"USCC_CHECK_DIGIT"), ("regsync.rule_id", b"REQUIRED_FIELD")], ("REQUIRED_FIELD", "USCC_CHECK_DIGIT")),
        ([("regsync.rule_ids", b"REQUIRED_FIELD,USCC_CHECK_DIGIT")], ("REQUIRED_FIELD", "USCC_CHECK_DIGIT")),
        ([("regsync.rule_ids", b"SOURCE_UNREADABLE")], ("SOURCE_UNREADABLE",)),
        ([("regsync.rule_ids", b'["A", "B"]')], ("A", "B")),
        ([("regsync.rule_ids", b"OLD"), ("regsync.rule_id", b"NEW")], ("NEW",)),
        ([], ()),
        (None, ()),
    ],
)  # fmt: skip
def test_rule_ids_are_read_in_the_new_and_the_old_form(stored, expected):
    assert rule_ids_from_headers(stored) == expected


def test_connector_rejection_uses_the_as_of_clock_and_the_full_header_set():
    dlq = connector_rejection(
        source="minzheng",
        source_record_id="MZ-7",
        reason="字段类型错误 phone 13812345678",
        raw=b'{"id": "MZ-7"}',
        run_id="extract-minzheng-1",
        raw_topic="registrations.raw",
        as_of=AS_OF,
        connector_class="connectors.minzheng.MinzhengConnector",
        judged_at=datetime(2026, 4, 2, 8, 0, tzinfo=UTC),
    )
    assert dlq.key == b"MZ-7"
    assert dlq.timestamp_ms == millis(AS_OF) == millis(dlq.value.error_context.rejected_at)
    ctx = dlq.value.error_context
    assert (ctx.source_topic, ctx.partition, ctx.offset, ctx.stage) == (
        "registrations.raw",
        -1,
        -1,
        ErrorStage.TASK_POLL,
    )
    assert ctx.judged_at == datetime(2026, 4, 2, 8, 0, tzinfo=UTC)
    text = _text(dlq.headers)
    for name in CONNECT:
        assert len(text[name]) == 1, name
    assert text["__connect.errors.stage"] == ["TASK_POLL"]
    assert text["__connect.errors.connector.name"] == ["regsync-extract-minzheng"]
    assert text["__connect.errors.exception.class.name"] == ["schemas.errors.RecordError"]
    assert text["regsync.rule_id"] == ["SOURCE_UNREADABLE"]
    assert text["regsync.source"] == ["minzheng"] and text["regsync.run_id"] == ["extract-minzheng-1"]
    everything = " ".join(v for values in text.values() for v in values) + str(dlq.value.violations)
    assert "13812345678" not in everything
    # the envelope encodes with the newest RejectedRecord contract and reads back equal
    codec = AvroCodec(get_contract(REJECTED_RECORD).latest.schema_str, 1)
    assert RejectedRecord.from_avro(codec.decode(codec.encode(dlq.value.to_avro()))) == dlq.value


def test_connector_rejection_keeps_a_truncated_copy_of_an_oversized_row():
    raw = b"x" * (RAW_COPY_LIMIT + 10)
    dlq = connector_rejection(
        source="shichang",
        source_record_id="SC-1",
        reason="field over 128 KiB",
        raw=raw,
        run_id="r",
        raw_topic="registrations.raw",
        as_of=AS_OF,
        connector_class="connectors.shichang.ShichangConnector",
        error=OverflowError("field over 128 KiB"),
    )
    assert dlq.value.raw_value is not None and len(dlq.value.raw_value) == RAW_COPY_LIMIT
    assert str(len(raw)) in (dlq.value.decode_error or "")
    assert _text(dlq.headers)["__connect.errors.exception.class.name"] == ["builtins.OverflowError"]
