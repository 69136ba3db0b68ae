"""Reading one month of the three topics, decoded, for the audit report and the month's suites.

Month M means *pushed in M*: each topic is read between the offsets
:func:`regsync.kafka.windows.month_window` finds for the first instant of M and of M+1, so "valid in
M" here is exactly what the load of M stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from quality.month_records import CONNECTOR_DLQ_RULE, Judged, MonthRecords, RawRecord
from regsync.kafka import bus, headers
from regsync.kafka.topics import Topics
from schemas.events import Registrar, RegistrationEvent, RejectedRecord

__all__ = ["read_month", "source_registrars"]

_LOGGER = logging.getLogger(__name__)


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
    """Decode the month's windows of raw, valid and rejected (read_committed).

    The windows are the loader's (:func:`regsync.kafka.windows.month_window`), so "valid in M" here is exactly
    what the load of M stored. The window search assumes push time never goes backwards within a
    partition; records whose own timestamp falls outside M are still counted with the window (as the
    load does) but logged, because they mean that assumption broke.
    """
    from regsync.kafka.windows import month_window

    codecs = bus.load_codecs(registry_url, topics)
    outside = 0
    # Each window is a binary search of round trips per partition; the three topics' run side by side.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="month-window") as pool:
        found = {t: pool.submit(month_window, bootstrap, t, month, tz, COMPONENT) for t in topics.all()}
        windows = {t: f.result() for t, f in found.items()}
    start_ms = int(windows[topics.raw].start.timestamp() * 1000)
    end_ms = int(windows[topics.raw].end.timestamp() * 1000)

    def scan(topic: str) -> Iterator[Any]:
        nonlocal outside
        window = windows[topic]
        start = {p: r[0] for p, r in window.ranges.items()}
        stop = {p: r[1] for p, r in window.ranges.items()}
        for record in bus.scan(bootstrap, topic, start, stop, component=COMPONENT):
            outside += not start_ms <= record.timestamp < end_ms
            yield record

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
    if outside:
        _LOGGER.warning(
            "%s: %d records inside the month's offset windows carry timestamps outside the month "
            "(push time went backwards within a partition); they are counted with the window",
            month,
            outside,
        )
    return MonthRecords(month, tuple(raw), tuple(valid), tuple(rejected), outside)
