"""The monthly load: the valid topic's records *pushed* in month M → the filing store, exactly once.

Month M is the half-open offset range the broker's time index gives for the first instant of M and
of M+1 (in the configured time zone), per partition. The sink stores the events, folds institutions
and writes the load manifest (these offset ranges, counts, checksum) in one database transaction, so
a re-run of M is a no-op and a load killed half-way leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator
from datetime import datetime

from regsync import logs, metrics
from regsync.faults import crash_point
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.kafka.windows import MonthWindow, month_window
from regsync.stages.gate import gate_group_id
from schemas.errors import ConfigurationError, RetriableError
from schemas.events import RegistrationEvent
from schemas.month import DEFAULT_TIMEZONE
from sink.loader import LoadResult, PositionedEvent


def positioned_events(
    bootstrap: str, registry_url: str, topics: Topics, window: MonthWindow
) -> Generator[PositionedEvent, None, None]:
    """Decode the window's records lazily (memory stays flat however large the month)."""
    codecs = bus.load_codecs(registry_url, topics)
    start = {p: r[0] for p, r in window.ranges.items()}
    stop = {p: r[1] for p, r in window.ranges.items()}
    for record in bus.scan(bootstrap, topics.valid, start, stop):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        yield PositionedEvent(record.partition, record.offset, record.timestamp, event)


def connect_args(database_url: str) -> dict[str, object]:
    """Bounds for PostgreSQL connections: a store that does not answer fails in seconds, not never."""
    if database_url.startswith("postgresql"):
        return {"connect_timeout": 10}
    return {}


class UnjudgedMonthError(RetriableError):
    """Raw records pushed in the month are not judged yet: loading now would store a partial month."""

    def __init__(self, month: str, waiting: dict[int, int]) -> None:
        super().__init__(
            f"month {month}: {sum(waiting.values()):,} raw records are not judged by the gate yet "
            f"(partitions {sorted(waiting)})",
            hint="run `regsync gate` until it is caught up, or pass --allow-unjudged if you know better",
        )
        self.waiting = waiting


def unjudged(bootstrap: str, topics: Topics, month: str, tz: str) -> dict[int, int]:
    """Per raw partition, how many records pushed in ``month`` lie beyond the gate's committed offset.

    The gate commits its raw offsets inside its Kafka transactions, so a committed offset at or past
    the month's end on every partition means every record of the month has a verdict on valid or
    rejected (read_committed).
    """
    from kafka import KafkaConsumer, TopicPartition

    window = month_window(bootstrap, topics.raw, month, tz)
    wanted = {p: (first, end) for p, (first, end) in window.ranges.items() if end > first}
    if not wanted:
        return {}
    # A consumer that never subscribes only asks the group coordinator (it joins no group).
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=gate_group_id(topics),
        enable_auto_commit=False,
        request_timeout_ms=bus.REQUEST_TIMEOUT_MS,
    )
    try:
        done = {p: reader.committed(TopicPartition(topics.raw, p)) for p in wanted}
    finally:
        bus.close_bounded(reader)
    waiting = {}
    for partition, (first, end) in wanted.items():
        reached = max(done.get(partition) or -1, first)
        if reached < end:
            waiting[partition] = end - reached
    return waiting


def run_load(
    *,
    bootstrap: str,
    registry_url: str,
    database_url: str,
    topics: Topics,
    month: str,
    tz: str = DEFAULT_TIMEZONE,
    as_of: datetime | None = None,
    allow_open_month: bool = False,
    allow_unjudged: bool = False,
    replace: bool = False,
    chunk_size: int = 1000,
) -> LoadResult:
    """Load one month (backfill = the same call for an older month). Refuses a month not yet over."""
    import sqlalchemy as sa

    from sink.loader import load_month
    from sink.store import upgrade

    window = month_window(bootstrap, topics.valid, month, tz)
    if as_of is not None and as_of < window.end and not allow_open_month:
        raise ConfigurationError(
            f"month {month} is not over at {as_of.isoformat()}; loading it now would miss later pushes "
            "(use --allow-open-month to load it anyway and --replace later)"
        )
    if not allow_unjudged:
        waiting = unjudged(bootstrap, topics, month, tz)
        if waiting:
            raise UnjudgedMonthError(month, waiting)
    upgrade(database_url)
    engine = sa.create_engine(database_url, connect_args=connect_args(database_url))
    # closing(): if the store fails mid-month, the scan's consumer is closed here and now, not by
    # the garbage collector (where its close hung for minutes: issue 13 item 7).
    events = contextlib.closing(positioned_events(bootstrap, registry_url, topics, window))
    run_id = f"load-{month}-{uuid.uuid4().hex[:8]}"
    logs.bind_run_id(run_id)
    try:
        with events as positioned:
            result = load_month(
                engine,
                month=month,
                topic=topics.valid,
                positioned=positioned,
                offset_ranges=window.ranges,
                run_id=run_id,
                tz=tz,
                chunk_size=chunk_size,
                replace=replace,
                on_chunk=lambda _i: crash_point("load.in_transaction"),
            )
        metrics.record_load(0 if result.noop else result.records, window.end.timestamp())
        return result
    finally:
        engine.dispose()
