"""The monthly load: the valid topic's records *pushed* in month M → the filing store, exactly once.

Month M is the half-open offset range the broker's time index gives for the first instant of M and
of M+1 (in the configured time zone), per partition. The sink stores the events, folds institutions
and writes the load manifest (these offset ranges, counts, checksum) in one database transaction, so
a re-run of M is a no-op and a load killed half-way leaves nothing behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from kafka import KafkaConsumer, TopicPartition

from regsync import bus
from regsync.errors import ConfigurationError, FatalError
from regsync.faults import crash_point
from regsync.topics import Topics
from schemas.events import RegistrationEvent


@dataclass(frozen=True, slots=True)
class MonthWindow:
    """A calendar month as instants and as per-partition offset ranges."""

    month: str
    start: datetime
    end: datetime
    ranges: dict[int, tuple[int, int]]

    @property
    def records(self) -> int:
        """How many records the window holds across partitions."""
        return sum(end - start for start, end in self.ranges.values())


def month_bounds(month: str, tz: str) -> tuple[datetime, datetime]:
    """First instant of ``month`` and of the next month, in ``tz``."""
    try:
        year, mon = (int(part) for part in month.split("-"))
        start = datetime(year, mon, 1, tzinfo=ZoneInfo(tz))
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(f"month must look like 2026-03, got {month!r}") from exc
    nxt = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=ZoneInfo(tz))
    return start, nxt


def month_window(bootstrap: str, topic: str, month: str, tz: str) -> MonthWindow:
    """Find where ``month`` begins and ends in every partition, by the records' own timestamps.

    Not the broker's time index alone: transaction commit markers on the valid topic carry the
    coordinator's wall-clock time, so when history is replayed on an as-of clock the index answers
    "the first marker" for every past instant. A binary search over the data records (the consumer
    skips markers) finds the first offset pushed at or after an instant in O(log n) reads. It relies
    on push time never going backwards within a partition, which the as-of clock guarantees.
    """
    start, end = month_bounds(month, tz)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=1,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise FatalError(f"topic {topic} does not exist or has no partitions")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = consumer.end_offsets(tps)
        begins = consumer.beginning_offsets(tps)
        ranges = {}
        for tp in tps:
            consumer.assign([tp])
            first = _first_at_or_after(consumer, tp, int(start.timestamp() * 1000), begins[tp], ends[tp])
            last = _first_at_or_after(consumer, tp, int(end.timestamp() * 1000), first, ends[tp])
            ranges[tp.partition] = (first, last)
        return MonthWindow(month, start, end, ranges)
    finally:
        consumer.close()


def _first_data_record(consumer: KafkaConsumer, tp: TopicPartition, offset: int, end: int) -> object | None:
    """The first data record at or after ``offset`` (markers and aborted data skipped), or None."""
    if offset >= end:
        return None
    consumer.seek(tp, offset)
    for _ in range(50):
        for record in consumer.poll(timeout_ms=500).get(tp, []):
            return record if record.offset < end else None
        if consumer.position(tp) >= end:
            return None
    raise FatalError(f"could not read {tp.topic}[{tp.partition}] at offset {offset}")


def _first_at_or_after(consumer: KafkaConsumer, tp: TopicPartition, ts_ms: int, lo: int, hi: int) -> int:
    """Smallest offset in [lo, hi] from which every data record is pushed at or after ``ts_ms``."""
    while lo < hi:
        mid = (lo + hi) // 2
        record = _first_data_record(consumer, tp, mid, hi)
        if record is None or record.timestamp >= ts_ms:  # type: ignore[attr-defined]
            hi = mid
        else:
            lo = record.offset + 1  # type: ignore[attr-defined]
    return lo


def positioned_events(
    bootstrap: str, registry_url: str, topics: Topics, window: MonthWindow
) -> Iterator[object]:
    """Decode the window's records lazily (memory stays flat however large the month)."""
    from sink.loader import PositionedEvent

    codecs = bus.load_codecs(registry_url, topics)
    start = {p: r[0] for p, r in window.ranges.items()}
    stop = {p: r[1] for p, r in window.ranges.items()}
    for record in bus.scan(bootstrap, topics.valid, start, stop):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        yield PositionedEvent(record.partition, record.offset, record.timestamp, event)


def run_load(
    *,
    bootstrap: str,
    registry_url: str,
    database_url: str,
    topics: Topics,
    month: str,
    tz: str = "Asia/Shanghai",
    as_of: datetime | None = None,
    allow_open_month: bool = False,
    replace: bool = False,
    chunk_size: int = 1000,
) -> object:
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
    upgrade(database_url)
    engine = sa.create_engine(database_url)
    try:
        return load_month(
            engine,
            month=month,
            topic=topics.valid,
            positioned=positioned_events(bootstrap, registry_url, topics, window),
            offset_ranges=window.ranges,
            run_id=f"load-{month}-{uuid.uuid4().hex[:8]}",
            tz=tz,
            chunk_size=chunk_size,
            replace=replace,
            on_chunk=lambda _i: crash_point("load.in_transaction"),
        )
    finally:
        engine.dispose()
