"""Extraction: connector batches → ``registrations.raw``, then the cursor, in that order.

Per batch: encode every event, send with the idempotent producer (key = USCC, timestamp = the
push instant of :func:`push_stamp`, headers = source/event id/run id), flush, resolve *every* future (a
failed send raises; nothing is fire-and-forget), and only then commit the connector's state with
the offsets reached. The next batch is read and encoded while the broker acknowledges the one
sent (issue 12), but it is sent only after that one's commit: at most one batch is ever on the
topic ahead of the cursor, as before. A crash between the acknowledgement and the commit re-reads that batch on
restart; the recovery scan finds the event ids already on the topic past the last committed
offsets and does not send them again, so the topic holds each event id once. What the scan found
is committed (``published_ahead``, with the offsets scanned to) before anything more is sent, and
an id leaves that set only once a committed batch covers it: a recovering run killed in turn
leaves the next one the same knowledge (issue 13 item 1).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from connectors.base import Batch, Connector, ExtractContext, InvalidRecord, dlq_bytes
from regsync import logs, metrics
from regsync.bookkeeping.lock import source_lock
from regsync.bookkeeping.state import RunCounts, StateStore
from regsync.collector import startup_objects_frozen
from regsync.faults import crash_point
from regsync.kafka import bus, rejections
from regsync.kafka.topics import Topics

Progress = Callable[[Batch, RunCounts], None]
_LOG = logging.getLogger(__name__)

INVALID_SOURCE_RULE = "SOURCE_UNREADABLE"
MAX_EVENT_BYTES: Final = 1_000_000
"""Largest raw value sent: under the broker's and producer's 1 MiB defaults with key and headers."""


@dataclass(frozen=True, slots=True)
class ExtractSummary:
    """What one run did, for the CLI summary and the audit trail."""

    source: str
    run_id: str
    read: int
    not_childcare: int
    published: int
    recovered: int
    invalid: int
    waiting: dict[str, str] = field(default_factory=dict)  # what the source holds back, and why

    @property
    def childcare(self) -> int:
        """Rows that passed the childcare filter (published now, earlier, or sent to the DLQ)."""
        return self.published + self.recovered + self.invalid


#: The Kafka principal connectors log in as: write raw and the DLQ, read raw back to recover a crash.
COMPONENT = "connector"


def _recover(
    bootstrap: str, topic: str, source: str, offsets: dict[int, int]
) -> tuple[set[str], dict[int, int]]:
    """Event ids of ``source`` already on the topic past the committed offsets, and the end offsets now."""
    stop = bus.end_offsets(bootstrap, topic, COMPONENT)
    seen: set[str] = set()
    for record in bus.scan(bootstrap, topic, offsets, stop, component=COMPONENT):
        if bus.header(record, bus.HEADER_SOURCE) == source:
            event_id = bus.header(record, bus.HEADER_EVENT_ID)
            if event_id:
                seen.add(event_id)
    return seen, stop


def push_stamp(surfaced: datetime | None, previous_as_of: datetime | None, as_of: datetime) -> int:
    """The Kafka timestamp of one event: when it was pushed, which decides its month (docs/domain.md).

    The moment the record became available in the registrar's system, where its source says so
    (``ConnectorSpec.surfaced_field``), bounded to the poll's window ``(previous as-of, as-of]``:
    never after the as-of (the high-water mark's end bound read it as of then), and never at or
    before the previous run's as-of, so a record read late (committed at the source after that run
    looked) never lands in a month that may already be loaded. Without a change time, without a
    previous run (the window has no start) or when this run's as-of is not after the previous one
    (a re-run of an old poll), the as-of itself: the poll's window end.
    """
    ceiling = int(as_of.timestamp() * 1000)
    if surfaced is None or previous_as_of is None:
        return ceiling
    floor = int(previous_as_of.timestamp() * 1000) + 1
    if floor > ceiling:
        return ceiling
    return max(floor, min(int(surfaced.timestamp() * 1000), ceiling))


def _rejected_for(
    invalid: InvalidRecord, source: str, run_id: str, topic: str, at: datetime, connector: Connector
) -> rejections.DlqRecord:
    """A connector-level DLQ record: the raw row (masked again, bounded) and why no event was made of it.

    Built like the gate's rejections (:mod:`regsync.kafka.rejections`): Kafka Connect's DLQ headers,
    repeated rule-id headers, and one clock — record timestamp and ``rejected_at`` are the as-of.
    """
    raw, _ = dlq_bytes(invalid.raw)  # every connector's DLQ copy is masked here too (issue 13 item 9)
    return rejections.connector_rejection(
        source=source,
        source_record_id=invalid.source_record_id,
        reason=invalid.reason,
        raw=raw,
        run_id=run_id,
        raw_topic=topic,
        as_of=at,
        connector_class=rejections.qualified_name(connector),
    )


def _encode(codecs: bus.Codecs, event: Any, source: str, invalid: list[InvalidRecord]) -> bytes | None:
    """The event's wire bytes, or None with a DLQ entry when it cannot be encoded or is too big to send.

    The size is checked before producing: the broker would refuse the record
    (``MessageSizeTooLargeError``) and fail the run on it at every rerun (issue 13 item 4).
    """
    where = f"{source}: record {event.lineage.source_record_id}"
    try:
        value: bytes = codecs.raw.encode(event.to_wire())
    except Exception as exc:
        reason = f"{where}: the event does not fit the contract ({type(exc).__name__}: {exc})"
        invalid.append(InvalidRecord.of(event.lineage.source_record_id, _as_dict(event), reason))
        return None
    if len(value) > MAX_EVENT_BYTES:
        _oversized(event, source, len(value), invalid)
        return None
    return value


def _oversized(event: Any, source: str, size: int, invalid: list[InvalidRecord]) -> None:
    """The DLQ entry of an event too big to send (the broker would refuse it at every rerun)."""
    where = f"{source}: record {event.lineage.source_record_id}"
    reason = f"{where}: event of {size:,} bytes is over the {MAX_EVENT_BYTES:,}-byte limit"
    invalid.append(InvalidRecord.of(event.lineage.source_record_id, _as_dict(event), reason))


def _as_dict(event: Any) -> Any:
    try:
        return event.to_avro()
    except Exception:  # the DLQ copy must never be what fails
        return repr(event)


def _metric_counts(counts: RunCounts) -> metrics.ExtractCounts:
    return metrics.ExtractCounts(
        read=counts.read, published=counts.published, filtered=counts.not_childcare, dlq=counts.invalid
    )


@dataclass(slots=True)
class _Ready:
    """A batch encoded and checked, not sent yet."""

    batch: Batch
    values: list[tuple[bytes | None, bytes, bytes, int]]  # key, value, event id (UTF-8), push stamp (ms)
    invalid: list[InvalidRecord]
    covered: set[str]  # ids of this batch that an earlier run had already put on the topic
    recovered: int  # events of this batch skipped for that reason


@dataclass(slots=True)
class _Sent:
    """A batch handed to the producer: the futures to resolve before its state may be committed."""

    batch: Batch
    futures: list[Any]
    dlq: list[Any]
    covered: set[str]
    recovered: int


@dataclass(slots=True)
class _Run:
    """What stays the same for every batch of a run, worked out once (headers, topic names, clock)."""

    source: str
    run_id: str
    topics: Topics
    as_of: datetime
    previous_as_of: datetime | None  # the floor of every push stamp (push_stamp)
    codecs: bus.Codecs
    producer: Any
    connector: Connector
    raw_topic: str = ""
    source_header: tuple[str, bytes] = ("", b"")
    run_header: tuple[str, bytes] = ("", b"")

    def __post_init__(self) -> None:
        self.raw_topic = self.topics.raw
        self.source_header = (bus.HEADER_SOURCE, self.source.encode("utf-8"))
        self.run_header = (bus.HEADER_RUN_ID, self.run_id.encode("utf-8"))

    def prepare(self, batch: Batch, already: set[str]) -> _Ready:
        """Encode the batch's events (or name them for the DLQ); skip what is on the topic already."""
        values: list[tuple[bytes | None, bytes, bytes, int]] = []
        surfaced, previous_as_of, as_of = batch.surfaced, self.previous_as_of, self.as_of
        ceiling = push_stamp(None, previous_as_of, as_of)  # the stamp of every event without a change time
        covered: set[str] = set()
        recovered = 0
        invalid = list(batch.invalid)
        for event in batch.events:
            event_id = event.event_id
            if event_id in already:
                recovered += 1
                covered.add(event_id)
                continue
            # One record at a time: the codec's batch call (a batch of wire dicts alive at once)
            # measured no faster here, and slower without the frozen start-up objects (issue 12).
            value = _encode(self.codecs, event, self.source, invalid)
            if value is not None:
                stamp = push_stamp(surfaced.get(event_id), previous_as_of, as_of) if surfaced else ceiling
                values.append((event.kafka_key, value, event_id.encode("utf-8"), stamp))
        return _Ready(batch, values, invalid, covered, recovered)

    def publish(self, ready: _Ready) -> _Sent:
        """Hand the batch to the producer (events, then its DLQ records) without waiting for the broker."""
        send, topic = self.producer.send, self.raw_topic
        source_header, run_header = self.source_header, self.run_header
        futures = [
            send(
                topic,
                key=key,
                value=value,
                timestamp_ms=stamp,
                headers=[source_header, (bus.HEADER_EVENT_ID, event_id), run_header],
            )
            for key, value, event_id, stamp in ready.values
        ]
        dlq = []
        for bad in ready.invalid:
            record = _rejected_for(bad, self.source, self.run_id, self.raw_topic, self.as_of, self.connector)
            dlq.append(
                send(
                    self.topics.rejected,
                    key=record.key,
                    value=self.codecs.rejected.encode(record.value.to_avro()),
                    timestamp_ms=record.timestamp_ms,  # the as-of, like the raw records of the run
                    headers=record.headers,
                )
            )
        return _Sent(ready.batch, futures, dlq, ready.covered, ready.recovered)

    def settle(
        self,
        sent: _Sent,
        store: StateStore,
        offsets: dict[int, int],
        counts: RunCounts,
        already: set[str],
        waiting: dict[str, str],
        progress: Progress | None,
    ) -> None:
        """Wait for every record of the batch to be acknowledged, then commit its state and offsets."""
        self.producer.flush()  # only this batch is in the producer: the next one is not sent yet
        for future in sent.futures:
            meta = future.get(timeout=60)  # raises if the broker refused: never fire-and-forget
            offsets[meta.partition] = max(offsets.get(meta.partition, 0), meta.offset + 1)
        for future in sent.dlq:
            future.get(timeout=60)
        crash_point("extract.after_ack")  # acknowledged, cursor not yet committed
        batch = sent.batch
        counts.read += batch.read
        counts.recovered += sent.recovered
        counts.not_childcare += batch.not_childcare
        counts.published += len(sent.futures)
        counts.invalid += len(sent.dlq)
        waiting.update(batch.notes)
        already -= sent.covered  # behind the cursor once this commit lands: never read again
        store.commit(self.source, self.run_id, batch.state, offsets, counts, already)
        crash_point("extract.after_commit")
        if progress is not None:
            progress(batch, counts)


def run_extract(
    connector: Connector,
    *,
    bootstrap: str,
    registry_url: str,
    database_url: str,
    topics: Topics,
    as_of: datetime,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Extract everything new from one source, as of ``as_of`` (also the records' Kafka timestamp)."""
    source = connector.spec.name
    store = StateStore(database_url)
    run_id = f"extract-{source}-{uuid.uuid4().hex[:12]}"
    logs.bind_run_id(run_id)
    try:
        with source_lock(store.engine, source, run_id):  # one running extract per source
            return _run(
                connector, store, run_id, bootstrap, registry_url, topics, as_of, batch_size, progress
            )
    finally:
        store.dispose()


def _run(
    connector: Connector,
    store: StateStore,
    run_id: str,
    bootstrap: str,
    registry_url: str,
    topics: Topics,
    as_of: datetime,
    batch_size: int,
    progress: Progress | None,
) -> ExtractSummary:
    """The run itself, under the source's lock."""
    source = connector.spec.name
    codecs = bus.load_codecs(registry_url, topics)
    as_of = as_of.astimezone(UTC)
    saved = store.load(source)
    counts = RunCounts()
    waiting: dict[str, str] = {}
    previous_as_of = store.previous_as_of(source, run_id)
    store.start_run(run_id, source, as_of)
    producer = bus.idempotent_producer(bootstrap, COMPONENT)
    try:
        found, offsets = _recover(bootstrap, topics.raw, source, saved.raw_offsets if saved.exists else {})
        already = saved.published_ahead | found
        # Baseline, before anything is sent: nothing of ours lies beyond these offsets and ahead of
        # the cursor except what `already` holds — committed, so a kill from here on keeps it.
        store.commit(source, run_id, saved.state, offsets, counts, already)
        ctx = ExtractContext(extracted_at=as_of, run_id=run_id, batch_size=batch_size)
        run = _Run(source, run_id, topics, as_of, previous_as_of, codecs, producer, connector)
        batches = iter(connector.batches(saved.state, ctx))
        with startup_objects_frozen():
            _loop(run, batches, store, offsets, counts, already, waiting, progress)
    except BaseException as exc:
        bus.close_bounded(producer, timeout_s=5)
        store.finish_run(run_id, counts, error=f"{type(exc).__name__}: {exc}")
        metrics.record_extract(source, _metric_counts(counts), ok=False)
        raise
    bus.close_bounded(producer)
    store.finish_run(run_id, counts)
    metrics.record_extract(source, _metric_counts(counts), ok=True)
    if waiting:
        _LOG.warning("%s: waiting, not read yet: %s", source, waiting)
    return ExtractSummary(
        source,
        run_id,
        counts.read,
        counts.not_childcare,
        counts.published,
        counts.recovered,
        counts.invalid,
        waiting,
    )


def _loop(
    run: _Run,
    batches: Iterator[Batch],
    store: StateStore,
    offsets: dict[int, int],
    counts: RunCounts,
    already: set[str],
    waiting: dict[str, str],
    progress: Progress | None,
) -> None:
    """Read ahead one batch while the one sent is acknowledged; settle each before sending the next."""
    sent: _Sent | None = None  # published, not acknowledged yet: at most one batch
    while True:
        try:
            batch = next(batches, None)
            # Encoding the next batch overlaps the broker's round trip for the one in flight.
            ready = None if batch is None else run.prepare(batch, already)
        except Exception:
            if sent is not None:  # what was sent before the source failed is committed, as before
                run.settle(sent, store, offsets, counts, already, waiting, progress)
            raise
        if sent is not None:
            run.settle(sent, store, offsets, counts, already, waiting, progress)
            sent = None
        if ready is None:
            break
        sent = run.publish(ready)


def state_json(database_url: str, source: str) -> str:
    """The committed state of a source as JSON (for the CLI and tests)."""
    store = StateStore(database_url)
    try:
        return json.dumps(store.load(source).state, ensure_ascii=False, sort_keys=True)
    finally:
        store.dispose()
