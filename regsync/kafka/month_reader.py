"""Reading one month of the three topics, decoded, for the audit report and the month's suites.

Month M means *pushed in M*: every record of each topic whose own timestamp falls in M, wherever it
sits in its partition (:mod:`regsync.kafka.windows`), the same selection the load of M makes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from quality.month_records import CONNECTOR_DLQ_RULE, Judged, MonthRecords, RawRecord
from regsync.kafka import bus, headers
from regsync.kafka.topics import Topics
from schemas.events import Registrar, RegistrationEvent, RejectedRecord

__all__ = ["read_month", "source_registrars"]


def source_registrars() -> Mapping[str, Registrar]:
    """Source name (the ``regsync.source`` header) → registrar, from the registrar registry."""
    from regsync import sources

    return sources.registrars()


def _registrar(source: str | None, event: RegistrationEvent | None) -> Registrar | None:
    """The event's own registrar, else the one its source declares, else unknown."""
    if event is not None:
        return event.registrar
    return source_registrars().get(source or "")


def _int_header(record: object, name: str) -> int | None:
    value = bus.header(record, name)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


#: The Kafka principal of the reports: they reconcile raw against valid and rejected, so they read all three.
COMPONENT = "reports"


def read_month(bootstrap: str, registry_url: str, topics: Topics, month: str, tz: str) -> MonthRecords:
    """Decode the records of raw, valid and rejected pushed in ``month`` (read_committed).

    Selected by each record's own timestamp, like the load (:mod:`regsync.stages.load`), so "valid
    in M" here is what the load of M stored, except a record pushed in M that reached the topic
    after M was loaded: the next load refuses to go on past it (``LateRecordError``).
    """
    from regsync.kafka.windows import month_records, month_window

    codecs = bus.load_codecs(registry_url, topics)
    # Each window is a few broker round trips; the three topics' run side by side.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="month-window") as pool:
        found = {t: pool.submit(month_window, bootstrap, t, month, tz, COMPONENT) for t in topics.all()}
        windows = {t: f.result() for t, f in found.items()}

    def scan(topic: str) -> Iterator[Any]:
        return month_records(bootstrap, windows[topic], topic, COMPONENT)

    raw = []
    for record in scan(topics.raw):
        source = bus.header(record, bus.HEADER_SOURCE)
        try:
            event: RegistrationEvent | None = RegistrationEvent.from_avro(codecs.raw.decode(record.value))
        except Exception:  # the gate sends these to the DLQ as SCHEMA_INVALID; here they only count
            event = None
        raw.append(
            RawRecord(
                record.partition,
                record.offset,
                record.timestamp,
                source,
                _registrar(source, event),
                event,
                bus.header(record, headers.REPLAY_ID),
            )
        )
    valid = []
    for record in scan(topics.valid):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        source = bus.header(record, bus.HEADER_SOURCE)
        raw_partition = _int_header(record, headers.RAW_PARTITION)
        raw_offset = _int_header(record, headers.RAW_OFFSET)
        position = None if raw_partition is None or raw_offset is None else (raw_partition, raw_offset)
        valid.append(
            Judged(
                "accepted",
                record.partition,
                record.offset,
                record.timestamp,
                source,
                event.registrar,
                event,
                event.quality_warnings,
                position,
            )
        )
    rejected = []
    for record in scan(topics.rejected):
        dlq = RejectedRecord.from_avro(codecs.rejected.decode(record.value))
        source = bus.header(record, bus.HEADER_SOURCE)
        raw_partition = _int_header(record, headers.ERRORS_PARTITION)
        raw_offset = _int_header(record, headers.ERRORS_OFFSET)
        position = None if raw_partition is None or raw_offset is None else (raw_partition, raw_offset)
        from_connector = dlq.event is None and (
            position is None or any(v.rule_id == CONNECTOR_DLQ_RULE for v in dlq.violations)
        )
        rejected.append(
            Judged(
                "rejected",
                record.partition,
                record.offset,
                record.timestamp,
                source,
                _registrar(source, dlq.event),
                dlq.event,
                dlq.violations,
                None if from_connector else position,
                from_connector,
            )
        )
    return MonthRecords(month, tuple(raw), tuple(valid), tuple(rejected))
