"""Records of ``registrations.rejected``, built one way for both of its writers.

Two writers share the DLQ: extract, for source rows that cannot become events (stage ``TASK_POLL``),
and the gate, for raw values it cannot decode (``VALUE_CONVERTER``) or events a rule rejects
(``TRANSFORMATION``). Building their records here gives them one header set and one clock:

* **Headers.** The full Kafka Connect DLQ set (``__connect.errors.topic``, ``.partition``, ``.offset``,
  ``.connector.name``, ``.task.id``, ``.stage``, ``.class.name``, ``.exception.class.name``,
  ``.exception.message``; no stack trace), then one ``regsync.rule_id`` header per reject rule id —
  repeated headers, not a comma-joined string — and the run and lineage headers.
  :func:`rule_ids_from_headers` also reads the comma-joined ``regsync.rule_ids`` that records written
  before contract v2 carry.
* **Clock.** The record timestamp and ``error_context.rejected_at`` are both the push instant on the
  as-of clock: the raw record's timestamp at the gate, the extraction's as-of time at extract (which is
  also the timestamp of the raw records that extraction pushed). So a month cut by push time holds a
  rejection in the same month as the records of its extraction, whichever writer rejected it and
  however late; the wall clock goes to ``error_context.judged_at`` only.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from quality import rules
from regsync.kafka import headers
from schemas.errors import RecordError
from schemas.events import ErrorContext, ErrorStage, RejectedRecord, RuleViolation
from schemas.masking import mask_text

__all__ = [
    "EXCEPTION_MESSAGE_LIMIT",
    "RAW_COPY_LIMIT",
    "DlqRecord",
    "Origin",
    "connector_rejection",
    "dlq_headers",
    "from_millis",
    "millis",
    "qualified_name",
    "rule_ids_from_headers",
]

EXCEPTION_MESSAGE_LIMIT = 2000
"""Characters of ``__connect.errors.exception.message`` kept; a header is for a glance, the value holds all."""

RAW_COPY_LIMIT = 256 * 1024
"""Bytes of an unreadable source row copied into the DLQ value; longer rows keep a truncated copy and
their size, so the rejected record itself stays far below the broker's 1 MB message limit."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)

HeaderList = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the rejected thing came from: a consumed record, or (partition/offset -1) a source row."""

    topic: str
    partition: int = -1
    offset: int = -1


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """One record to send to ``registrations.rejected``: encode ``value.to_avro()`` with the rejected codec."""

    key: bytes | None
    value: RejectedRecord
    headers: HeaderList
    timestamp_ms: int


def millis(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime (a Kafka timestamp)."""
    return (moment.astimezone(UTC) - _EPOCH) // _ONE_MS


def from_millis(timestamp_ms: int) -> datetime:
    """An aware UTC datetime from a Kafka timestamp."""
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def qualified_name(thing: object) -> str:
    """``module.QualName`` of a class, function or instance — what Connect writes as a Java class name."""
    target = thing if isinstance(thing, type) or inspect.isroutine(thing) else type(thing)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def dlq_headers(
    *,
    origin: Origin,
    connector_name: str,
    task_id: int,
    stage: ErrorStage,
    executing_class: str,
    error: BaseException | None = None,
    exception_class: str | None = None,
    exception_message: str | None = None,
    rule_ids: Iterable[str] = (),
    extra: Iterable[tuple[str, str]] = (),
    kept: Iterable[tuple[str, bytes | None]] = (),
) -> HeaderList:
    """The header set of one rejected record.

    ``error`` names the failure (its class and message); ``exception_class``/``exception_message``
    override or replace it. ``kept`` are headers copied from the consumed record (lineage); any DLQ
    header among them is dropped, so a replayed record never carries two verdicts. ``extra`` are
    further ``regsync.*`` headers (run ids, source).
    """
    klass = exception_class or (qualified_name(error) if error is not None else "")
    message = exception_message if exception_message is not None else ("" if error is None else str(error))
    message = mask_text(message)
    if len(message) > EXCEPTION_MESSAGE_LIMIT:
        message = message[: EXCEPTION_MESSAGE_LIMIT - 1] + "…"
    out: HeaderList = [
        (key, value if value is not None else b"")
        for key, value in kept
        if key.startswith(headers.LINEAGE_PREFIX) and key not in _VERDICT_HEADERS
    ]
    text = [
        (headers.ERRORS_TOPIC, origin.topic),
        (headers.ERRORS_PARTITION, str(origin.partition)),
        (headers.ERRORS_OFFSET, str(origin.offset)),
        (headers.ERRORS_CONNECTOR_NAME, connector_name),
        (headers.ERRORS_TASK_ID, str(task_id)),
        (headers.ERRORS_STAGE, stage.value),
        (headers.ERRORS_CLASS_NAME, executing_class),
        (headers.ERRORS_EXCEPTION_CLASS, klass),
        (headers.ERRORS_EXCEPTION_MESSAGE, message),
        *((headers.RULE_ID, rule_id) for rule_id in sorted(set(rule_ids))),
        *extra,
    ]
    out += [(key, value.encode("utf-8")) for key, value in text]
    return out


_VERDICT_HEADERS = frozenset({headers.RULE_ID, headers.RULE_IDS, headers.GATE_RUN_ID})


def rule_ids_from_headers(record_headers: Sequence[tuple[str, bytes | None]] | None) -> tuple[str, ...]:
    """Reject rule ids of a DLQ record, sorted and distinct, in either header form.

    The repeated ``regsync.rule_id`` headers (contract v2) win; otherwise the comma-joined
    ``regsync.rule_ids`` of older records is read (a JSON array there is read too).
    """
    found: set[str] = set()
    legacy: set[str] = set()
    for key, value in record_headers or ():
        text = (value or b"").decode("utf-8", "replace").strip()
        if key == headers.RULE_ID and text:
            found.add(text)
        elif key == headers.RULE_IDS and text:
            legacy.update(_legacy_ids(text))
    return tuple(sorted(found or legacy))


def _legacy_ids(text: str) -> list[str]:
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(item).strip() for item in parsed if str(item).strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def connector_rejection(
    *,
    source: str,
    source_record_id: str,
    reason: str,
    raw: bytes,
    run_id: str,
    raw_topic: str,
    as_of: datetime,
    connector_class: str,
    error: BaseException | None = None,
    judged_at: datetime | None = None,
) -> DlqRecord:
    """The DLQ record of a source row that could not become an event (rule ``SOURCE_UNREADABLE``).

    Keyed by the registrar's record id (there is no USCC to trust), stamped with the extraction's
    ``as_of`` — record timestamp and ``rejected_at`` alike, the same instant as the raw records the run
    pushes — with the full DLQ header set (origin: ``raw_topic``, partition and offset -1, stage
    ``TASK_POLL``). ``reason`` is masked; ``raw`` is copied as given (the connector masks personal data
    in it) and truncated past :data:`RAW_COPY_LIMIT` bytes, its full size noted in ``decode_error``.
    """
    shown = mask_text(reason)
    copy = raw if len(raw) <= RAW_COPY_LIMIT else raw[:RAW_COPY_LIMIT]
    note = "" if copy is raw else f" (raw row of {len(raw)} bytes, first {RAW_COPY_LIMIT} kept)"
    violation: RuleViolation = rules.SOURCE_UNREADABLE.violation(
        f"来源记录无法转换为事件：{shown}", f"source record could not become an event: {shown}"
    )
    value = RejectedRecord(
        error_context=ErrorContext(
            raw_topic,
            -1,
            -1,
            run_id,
            as_of.astimezone(UTC),
            judged_at=(judged_at or datetime.now(UTC)).astimezone(UTC),
            stage=ErrorStage.TASK_POLL,
        ),
        violations=(violation,),
        raw_value=copy,
        decode_error=f"{source}:{source_record_id}: {shown}{note}",
    )
    hdrs = dlq_headers(
        origin=Origin(raw_topic),
        connector_name=f"regsync-extract-{source}",
        task_id=0,
        stage=ErrorStage.TASK_POLL,
        executing_class=connector_class,
        error=error,
        exception_class=None if error is not None else qualified_name(RecordError),
        exception_message=None if error is not None else shown,
        rule_ids=(rules.SOURCE_UNREADABLE.id,),
        extra=((headers.SOURCE, source), (headers.RUN_ID, run_id)),
    )
    return DlqRecord(source_record_id.encode("utf-8"), value, hdrs, millis(as_of))
