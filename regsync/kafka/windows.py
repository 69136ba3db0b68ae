"""Month windows: where a calendar month of push time begins and ends in each partition of a topic.

The monthly load, the audit report and the month's quality suites all cut a topic by the same
window, so "valid in M" means the same records everywhere. Offsets are half-open ``[first, end)``
ranges and may include transaction markers, which the consumer skips.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition

from regsync.kafka import bus
from regsync.kafka.bus import KafkaRecord, close_bounded
from schemas.errors import FatalError
from schemas.month import Month

__all__ = ["MonthWindow", "month_window"]


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


def month_window(
    bootstrap: str, topic: str, month: str, tz: str, component: str | None = None
) -> MonthWindow:
    """Find where ``month`` begins and ends in every partition, by the records' own timestamps.

    Not the broker's time index alone: transaction commit markers on the valid topic carry the
    coordinator's wall-clock time, so when history is replayed on an as-of clock the index answers
    "the first marker" for every past instant. A binary search over the data records (the consumer
    skips markers) finds the first offset pushed at or after an instant in O(log n) reads. It relies
    on push time never going backwards within a partition, which the as-of clock guarantees.
    """
    start, end = Month.parse(month).bounds(tz)
    consumer = bus.consumer(
        bootstrap,
        component=component,
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
        close_bounded(consumer)


def _first_data_record(
    consumer: KafkaConsumer, tp: TopicPartition, offset: int, end: int
) -> KafkaRecord | None:
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
        if record is None or record.timestamp >= ts_ms:
            hi = mid
        else:
            lo = record.offset + 1
    return lo
