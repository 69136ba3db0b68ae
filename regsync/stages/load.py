"""The monthly load: the valid topic's records *pushed* in month M → the filing store, exactly once.

Month M is the half-open offset range the broker's time index gives for the first instant of M and
of M+1 (in the configured time zone), per partition. The sink stores the events, folds institutions
and writes the load manifest (these offset ranges, counts, checksum) in one database transaction, so
a re-run of M is a no-op and a load killed half-way leaves nothing behind.

Months load oldest first whoever starts them (an Airflow backfill beside a scheduled run, a CLI
run): a month is refused while an older month that has records on the valid topic is not loaded
(``allow_gap`` overrides), and one load runs at a time per valid topic (an advisory lock), so the
order check and the load cannot interleave with another load.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator, Iterable, Iterator
from datetime import datetime

from regsync import logs, metrics
from regsync.bookkeeping.locks import advisory_lock
from regsync.faults import crash_point
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.kafka.windows import MonthWindow, _first_data_record, month_window
from regsync.stages.gate import gate_group_id
from schemas.errors import ConfigurationError, FatalError, RetriableError
from schemas.events import RegistrationEvent
from schemas.month import DEFAULT_TIMEZONE, Month
from sink.loader import LoadResult, PositionedEvent

#: The Kafka principal the load logs in as (its ACLs: read valid and rejected, read raw's windows).
COMPONENT = "loader"


def positioned_events(
    bootstrap: str, registry_url: str, topics: Topics, window: MonthWindow
) -> Generator[PositionedEvent, None, None]:
    """Decode the window's records lazily (memory stays flat however large the month)."""
    codecs = bus.load_codecs(registry_url, topics)
    start = {p: r[0] for p, r in window.ranges.items()}
    stop = {p: r[1] for p, r in window.ranges.items()}
    for record in bus.scan(bootstrap, topics.valid, start, stop, component=COMPONENT):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        yield PositionedEvent(record.partition, record.offset, record.timestamp, event)


class TimestampOrderError(FatalError):
    """A record inside the month's offset window was pushed outside the month.

    The window is found by a binary search that assumes push timestamps never go backwards within a
    partition; a record stamped earlier than one before it (an extraction re-run with an older as-of)
    breaks that, and loading on would file records under the wrong month. Refused, in the load's
    transaction, so nothing is stored.
    """

    def __init__(self, month: str, partition: int, offset: int, pushed_at: datetime) -> None:
        super().__init__(
            f"month {month}: {partition=} {offset=} was pushed at {pushed_at.isoformat()}, outside the month, "
            "inside its offset window: push timestamps went backwards in this partition",
            hint="an extraction was re-run with an older as-of; see docs/operations.md (the push month)",
        )


def in_window(positioned: Iterable[PositionedEvent], window: MonthWindow) -> Iterator[PositionedEvent]:
    """The window's records, each checked to be pushed within the month (see :class:`TimestampOrderError`)."""
    from datetime import UTC

    start_ms, end_ms = int(window.start.timestamp() * 1000), int(window.end.timestamp() * 1000)
    for item in positioned:
        ts = item.timestamp_ms
        if ts is not None and not start_ms <= ts < end_ms:
            pushed = datetime.fromtimestamp(ts / 1000, UTC)
            raise TimestampOrderError(window.month, item.partition, item.offset, pushed)
        yield item


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
    from kafka import TopicPartition

    window = month_window(bootstrap, topics.raw, month, tz, COMPONENT)
    wanted = {p: (first, end) for p, (first, end) in window.ranges.items() if end > first}
    if not wanted:
        return {}
    # A consumer that never subscribes only asks the group coordinator (it joins no group).
    reader = bus.consumer(
        bootstrap,
        component=COMPONENT,
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


class MonthGapError(RetriableError):
    """An older month with records on the valid topic is not loaded yet: months load oldest first.

    Retriable because the usual cause is a backfill of the older month still running beside this
    run; a month that was really skipped needs a person (load it, or ``--allow-gap``).
    """

    def __init__(self, month: str, gaps: list[str]) -> None:
        super().__init__(
            f"month {month}: older month(s) {', '.join(gaps)} have records on the valid topic but are not "
            "loaded; months load oldest first",
            hint=f"load {gaps[0]} first (a backfill of it may still be running), or pass --allow-gap",
        )
        self.gaps = gaps


def earliest_month(bootstrap: str, topic: str, tz: str) -> Month | None:
    """The month of the earliest committed data record on ``topic`` (any partition), or None if empty."""
    from datetime import UTC

    from kafka import TopicPartition

    consumer = bus.consumer(
        bootstrap,
        component=COMPONENT,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=1,
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        begins, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        stamps = []
        for tp in tps:
            consumer.assign([tp])
            record = _first_data_record(consumer, tp, begins[tp], ends[tp])
            if record is not None:
                stamps.append(record.timestamp)
    finally:
        consumer.close()
    if not stamps:
        return None
    # Not min() over the first records alone if timestamps ever went backwards: good enough here,
    # because an older record later in a partition only makes the check look at fewer months.
    return Month.of(datetime.fromtimestamp(min(stamps) / 1000, UTC), tz)


def unloaded_before(bootstrap: str, database_url: str, topics: Topics, month: str, tz: str) -> list[str]:
    """Months before ``month`` that have records on the valid topic and no load manifest, oldest first."""
    import sqlalchemy as sa

    from sink.models import load_manifests as lm

    first = earliest_month(bootstrap, topics.valid, tz)
    target = Month.parse(month)
    if first is None or str(first) >= str(target):
        return []
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            loaded = set(conn.scalars(sa.select(lm.c.month).where(lm.c.topic == topics.valid)))
    finally:
        engine.dispose()
    gaps = []
    current = first
    while str(current) < str(target):
        if (
            str(current) not in loaded
            and month_window(bootstrap, topics.valid, str(current), tz, COMPONENT).records
        ):
            gaps.append(str(current))
        current = current.next()
    return gaps


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
    allow_gap: bool = False,
    replace: bool = False,
    chunk_size: int = 1000,
) -> LoadResult:
    """Load one month (backfill = the same call for an older month).

    Refuses a month not yet over, one whose raw records the gate has not judged, and one with an
    older unloaded month before it; raises :class:`~regsync.bookkeeping.locks.LockBusyError` while
    another load of the same valid topic runs.
    """
    from sink.store import upgrade

    upgrade(database_url)  # the manifests table must exist before the order check reads it
    with advisory_lock(database_url, f"regsync.load:{topics.valid}"):
        return _load_locked(
            bootstrap=bootstrap,
            registry_url=registry_url,
            database_url=database_url,
            topics=topics,
            month=month,
            tz=tz,
            as_of=as_of,
            allow_open_month=allow_open_month,
            allow_unjudged=allow_unjudged,
            allow_gap=allow_gap,
            replace=replace,
            chunk_size=chunk_size,
        )


def _load_locked(
    *,
    bootstrap: str,
    registry_url: str,
    database_url: str,
    topics: Topics,
    month: str,
    tz: str,
    as_of: datetime | None,
    allow_open_month: bool,
    allow_unjudged: bool,
    allow_gap: bool,
    replace: bool,
    chunk_size: int,
) -> LoadResult:
    import sqlalchemy as sa

    from sink.loader import find_manifest, load_month

    window = month_window(bootstrap, topics.valid, month, tz, COMPONENT)
    if as_of is not None and as_of < window.end and not allow_open_month:
        raise ConfigurationError(
            f"month {month} is not over at {as_of.isoformat()}; loading it now would miss later pushes "
            "(use --allow-open-month to load it anyway and --replace later)"
        )
    if not allow_unjudged:
        waiting = unjudged(bootstrap, topics, month, tz)
        if waiting:
            raise UnjudgedMonthError(month, waiting)
    engine = sa.create_engine(database_url, connect_args=connect_args(database_url))
    # closing(): if the store fails mid-month, the scan's consumer is closed here and now, not by
    # the garbage collector (where its close hung for minutes: issue 13 item 7).
    events = contextlib.closing(positioned_events(bootstrap, registry_url, topics, window))
    run_id = f"load-{month}-{uuid.uuid4().hex[:8]}"
    logs.bind_run_id(run_id)
    try:
        # A month loaded already is a no-op re-run (or a --replace): the order held when it loaded.
        if not allow_gap and find_manifest(engine, month, topics.valid) is None:
            gaps = unloaded_before(bootstrap, database_url, topics, month, tz)
            if gaps:
                raise MonthGapError(month, gaps)
        with events as positioned:
            result = load_month(
                engine,
                month=month,
                topic=topics.valid,
                positioned=in_window(positioned, window),
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
