"""Month windows: which records of a topic were pushed in a calendar month, wherever they sit.

Month M is every record whose own timestamp (the push instant, see docs/domain.md "pushed in month
M") falls in M in the configured time zone. Push timestamps are *not* in offset order within a
partition: extraction stamps each record with its own surfacing time where the source gives one,
and a re-run extraction stamps an older as-of. So a window is not an offset range of the month; it
is a range of offsets to *scan*, ``[lower bound, end)`` per partition, that holds every record of
M (and others), plus the month's instants to select by (:meth:`MonthWindow.holds`).

The lower bound is the broker's answer to "the earliest offset whose timestamp is at or after the
month's first instant" (ListOffsets by timestamp, KIP-33). Kafka defines that answer over the
records' own timestamps, not over offset order, so it holds for out-of-order timestamps too. It is
only loose, never wrong, on transactional topics replayed on an as-of clock, where the commit
markers carry the coordinator's wall-clock time and the answer falls to the first marker. The
monthly load does not use it: it scans from its own persisted low-water offsets
(:mod:`regsync.stages.load`), because it must also see records of *older* months that arrived late.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from regsync.kafka import bus
from regsync.kafka.bus import KafkaRecord, close_bounded
from schemas.errors import ServiceUnavailableError
from schemas.month import Month

__all__ = ["MonthWindow", "PartitionsUnavailableError", "month_records", "month_window", "topic_partitions"]

METADATA_WAIT_S = 15.0
"""How long a partition list may stay empty before the caller is told to retry later."""


class PartitionsUnavailableError(ServiceUnavailableError):
    """The cluster gave no partitions for a topic: a broker restarting, or the topic missing.

    Retriable (exit 69), not fatal: during a broker restart the metadata is briefly empty, and a
    load that exited 78 there would wait for a person although a retry a minute later succeeds
    (issue 16, small fix a). A topic that really is missing keeps failing the retries, and the
    message says so.
    """

    def __init__(self, topic: str, waited_s: float) -> None:
        super().__init__(
            "kafka",
            topic,
            f"no partitions after {waited_s:.0f}s (a broker restarting, or the topic does not exist)",
            hint="retry in a minute; if it persists, run `regsync topics ensure` or check the prefix",
        )
        self.topic = topic


def topic_partitions(
    consumer: KafkaConsumer, topic: str, wait_s: float = METADATA_WAIT_S
) -> list[TopicPartition]:
    """The topic's partitions, refreshing metadata for up to ``wait_s`` while the list is empty."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            partitions = consumer.partitions_for_topic(topic)
        except KafkaError:  # metadata request failed outright: the same "try again" as empty
            partitions = None
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        if time.monotonic() >= deadline:
            raise PartitionsUnavailableError(topic, wait_s)
        time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class MonthWindow:
    """A calendar month as instants, and per partition the offsets to scan for its records."""

    month: str
    start: datetime
    end: datetime
    ranges: dict[int, tuple[int, int]]  # partition → [first offset to scan, end) — holds others too

    @property
    def start_ms(self) -> int:
        """The month's first instant, as a Kafka timestamp."""
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        """The next month's first instant, as a Kafka timestamp."""
        return int(self.end.timestamp() * 1000)

    def holds(self, timestamp_ms: int) -> bool:
        """Whether a record with this timestamp was pushed in the month."""
        return self.start_ms <= timestamp_ms < self.end_ms


def month_window(
    bootstrap: str, topic: str, month: str, tz: str, component: str | None = None
) -> MonthWindow:
    """The offsets to scan for ``month`` on ``topic``: from the broker's timestamp bound to the end now.

    The bound is asked for one millisecond before the month: a record stamped exactly at the
    month's first instant is then never on the wrong side of a tie in the broker's index lookup.
    """
    start, end = Month.parse(month).bounds(tz)
    consumer = bus.consumer(
        bootstrap,
        component=component,
        enable_auto_commit=False,
        isolation_level="read_committed",  # end_offsets answers the last stable offset
        request_timeout_ms=bus.REQUEST_TIMEOUT_MS,
    )
    try:
        tps = topic_partitions(consumer, topic)
        ends = consumer.end_offsets(tps)
        found = consumer.offsets_for_times({tp: int(start.timestamp() * 1000) - 1 for tp in tps})
        ranges = {}
        for tp in tps:
            hit = found.get(tp)
            first = ends[tp] if hit is None else min(hit.offset, ends[tp])  # None: nothing that late
            ranges[tp.partition] = (first, ends[tp])
        return MonthWindow(month, start, end, ranges)
    finally:
        close_bounded(consumer)


def month_records(
    bootstrap: str, window: MonthWindow, topic: str, component: str | None = None
) -> Generator[KafkaRecord, None, None]:
    """The records of ``topic`` pushed in the window's month, in offset order per partition (not decoded).

    A caller that may stop early must close the generator (``contextlib.closing``).
    """
    start = {p: r[0] for p, r in window.ranges.items()}
    stop = {p: r[1] for p, r in window.ranges.items()}
    scan = bus.scan(bootstrap, topic, start, stop, component=component)
    try:
        for record in scan:
            if window.holds(record.timestamp):
                yield record
    finally:
        scan.close()
