"""The monthly load: the valid topic's records *pushed* in month M → the filing store, exactly once.

Month M is every record whose own timestamp falls in M (in the configured time zone), wherever it
sits in its partition: push timestamps are not in offset order (extraction stamps a record with its
own surfacing time where the source gives one; an extraction re-run stamps an older as-of). Per
partition the load scans from a persisted low-water offset — the first record whose month is not
loaded yet (table ``load_low_water``) — to the end, and selects M by timestamp without decoding the
rest (:class:`Selection`). The sink stores the events, folds institutions and writes the load
manifest (the scanned offset ranges, counts, checksum) in one database transaction, so a re-run of M
is a no-op and a load killed half-way leaves nothing behind; the low-water moves forward only after
that commit.

While scanning, every record of an *older* month is accounted for: loaded (inside that month's
manifest), a gap (its month is not loaded: :class:`MonthGapError`, ``allow_gap`` overrides), or
late (its month was loaded before it reached the topic: :class:`LateRecordError`, a person must
reload that month with ``--replace``). So no record is loaded twice and none is skipped silently.

Months load oldest first whoever starts them (an Airflow backfill beside a scheduled run, a CLI
run), and one load runs at a time per valid topic (an advisory lock), so the order check and the
load cannot interleave with another load.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import threading
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar, cast

from regsync import logs, metrics
from regsync.bookkeeping.locks import advisory_lock
from regsync.faults import crash_point
from regsync.kafka import bus
from regsync.kafka.bus import KafkaRecord
from regsync.kafka.topics import Topics
from regsync.stages.gate import gate_group_id
from regsync.stages.load_reader import ProcessReader, ReaderPool, ReaderSpec
from regsync.stages.load_selection import LateRecordError, MonthGapError, Selection

__all__ = [
    "LateRecordError",
    "MonthGapError",
    "ReadAhead",
    "Selection",
    "UnjudgedMonthError",
    "connect_args",
    "loaded_months",
    "low_water",
    "positioned_events",
    "run_load",
    "save_low_water",
    "unjudged",
    "unloaded_before",
]
from schemas.errors import ConfigurationError, RetriableError
from schemas.month import DEFAULT_TIMEZONE, Month
from sink.loader import LoadResult, PositionedRecord, RowMaker

#: The Kafka principal the load logs in as (its ACLs: read valid and rejected, read raw's windows).
COMPONENT = "loader"

T = TypeVar("T")


def positioned_events(
    registry_url: str, topics: Topics, records: Iterable[KafkaRecord], rows: RowMaker | None = None
) -> Generator[PositionedRecord, None, None]:
    """Decode the selected records lazily (memory stays flat however large the month).

    Into the Avro mapping, not the typed model: the sink reads the mapping (see
    :class:`sink.loader.PositionedRecord`). With ``rows``, each record's store row is made here
    too, so it is made in the thread that runs this generator (:class:`ReadAhead`).
    """
    decode = bus.load_codecs(registry_url, topics).valid.decode
    make = PositionedRecord if rows is None else rows.prepare
    for record in records:
        yield make(record.partition, record.offset, record.timestamp, decode(record.value))


class ReadAhead(Generic[T]):
    """Run a generator in a worker thread, ``depth`` batches of ``batch`` items ahead of the caller.

    Why: the load's main thread waits on PostgreSQL for most of its time (a chunk's COPY being
    processed, the roster upsert) and receiving the next records from the reading process
    (:mod:`regsync.stages.load_reader`) — or, where there is none, reading and decoding them — is
    work that can happen meanwhile (the server runs on the other core; psycopg and
    kafka-python's socket waits release the GIL). Memory stays bounded: at most ``depth + 2``
    batches exist at once. An exception in the worker (a late record, a gap, a broker that went
    away) is raised in the caller as the same object, once the items before it have been handed on;
    closing this generator stops the worker and closes the source in that thread, and returns only
    when the worker has finished, so the caller may then close what the source read from.
    ``queue.Queue`` plus one thread is all it needs: ``concurrent.futures`` has no bounded
    read-ahead of a generator.
    """

    _END = object()

    def __init__(self, source: Generator[T, None, None], *, batch: int = 500, depth: int = 4) -> None:
        self._source, self._batch = source, batch
        self._queue: queue.Queue[list[T] | BaseException | object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # in a copy of the caller's context, so the worker's log lines carry the run id too
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._work,), name="load-read-ahead", daemon=True
        )
        self._thread.start()

    def _put(self, item: list[T] | BaseException | object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        items: list[T] = []
        try:
            for item in self._source:
                if self._stop.is_set():  # the caller closed early: stop at once, not at the next full batch
                    return
                items.append(item)
                if len(items) >= self._batch:
                    if not self._put(items):
                        return
                    items = []
            end: BaseException | object = self._END
        except BaseException as exc:  # handed to the caller, raised there after the items before it
            end = exc
        finally:
            self._source.close()
        if items and not self._put(items):
            return
        self._put(end)

    def __iter__(self) -> Iterator[T]:
        return self._items()

    def _items(self) -> Generator[T, None, None]:
        try:
            while True:
                got = self._queue.get()
                if got is self._END:
                    return
                if isinstance(got, BaseException):
                    raise got
                yield from cast("list[T]", got)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker and wait for it (it closes the source); idempotent."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # unblock a worker waiting to put
                self._queue.get_nowait()
            self._thread.join(timeout=0.05)


def connect_args(database_url: str) -> dict[str, object]:
    """Bounds for PostgreSQL connections: a store that does not answer fails in seconds, not never."""
    if database_url.startswith("postgresql"):
        return {"connect_timeout": 10}
    return {}


class UnjudgedMonthError(RetriableError):
    """Raw records pushed in the month (or before it) are not judged yet: loading now would store a partial month."""

    def __init__(self, month: str, waiting: dict[int, int]) -> None:
        super().__init__(
            f"month {month}: {sum(waiting.values()):,} raw records are not judged by the gate yet "
            f"(partitions {sorted(waiting)})",
            hint="run `regsync gate` until it is caught up, or pass --allow-unjudged if you know better",
        )
        self.waiting = waiting


def unjudged(bootstrap: str, topics: Topics, month: str, tz: str) -> dict[int, int]:
    """Per raw partition, how many records pushed before ``month`` ends lie beyond the gate's committed offset.

    The gate commits its raw offsets inside its Kafka transactions, so every record before a
    committed offset has its verdict on valid or rejected (read_committed). Records after it are
    read by timestamp (they need not be in order): any pushed before the month's end waits for the
    gate. Usually the gate is caught up and this reads nothing.
    """
    from kafka import TopicPartition

    _, end = Month.parse(month).bounds(tz)
    end_ms = int(end.timestamp() * 1000)
    ends = bus.end_offsets(bootstrap, topics.raw, COMPONENT)
    # A consumer that never subscribes only asks the group coordinator (it joins no group).
    reader = bus.consumer(
        bootstrap,
        component=COMPONENT,
        group_id=gate_group_id(topics),
        enable_auto_commit=False,
        request_timeout_ms=bus.REQUEST_TIMEOUT_MS,
    )
    try:
        tps = {p: TopicPartition(topics.raw, p) for p in ends}
        begins = reader.beginning_offsets(list(tps.values()))
        done = {p: reader.committed(tp) for p, tp in tps.items()}
    finally:
        bus.close_bounded(reader)
    start = {p: max(done[p] or 0, begins[tps[p]]) for p in ends}
    waiting: dict[int, int] = {}
    scan = bus.scan(bootstrap, topics.raw, start, ends, component=COMPONENT)
    with contextlib.closing(scan):
        for record in scan:
            if record.timestamp < end_ms:
                waiting[record.partition] = waiting.get(record.partition, 0) + 1
    return waiting


def loaded_months(database_url: str, topic: str) -> dict[str, dict[int, tuple[int, int]]]:
    """Every loaded month of ``topic`` → its manifest's per-partition offset ranges."""
    import sqlalchemy as sa

    from sink.models import load_manifests as lm

    engine = sa.create_engine(database_url, connect_args=connect_args(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(lm.c.month, lm.c.offset_ranges).where(lm.c.topic == topic)).all()
    finally:
        engine.dispose()
    return {m: {int(p): (int(r[0]), int(r[1])) for p, r in ranges.items()} for m, ranges in rows}


def low_water(bootstrap: str, database_url: str, topic: str) -> dict[int, int]:
    """Where the next load of ``topic`` starts scanning, per partition (the beginning where none is kept)."""
    import sqlalchemy as sa

    from regsync.bookkeeping.migrate import upgrade
    from regsync.bookkeeping.tables import load_low_water as lw
    from regsync.kafka.windows import topic_partitions

    upgrade(database_url)
    consumer = bus.consumer(bootstrap, component=COMPONENT, request_timeout_ms=bus.REQUEST_TIMEOUT_MS)
    try:
        begins = {
            tp.partition: off
            for tp, off in consumer.beginning_offsets(topic_partitions(consumer, topic)).items()
        }
    finally:
        bus.close_bounded(consumer)
    engine = sa.create_engine(database_url, connect_args=connect_args(database_url))
    try:
        with engine.connect() as conn:
            kept = dict(
                conn.execute(sa.select(lw.c.partition, lw.c.next_offset).where(lw.c.topic == topic)).all()
            )
    finally:
        engine.dispose()
    return {p: max(int(kept.get(p, begin)), begin) for p, begin in begins.items()}


def save_low_water(database_url: str, topic: str, offsets: Mapping[int, int], run_id: str) -> None:
    """Move the kept low-water offsets forward (never back), after the load's transaction committed."""
    import sqlalchemy as sa

    from regsync.bookkeeping.tables import load_low_water as lw

    engine = sa.create_engine(database_url, connect_args=connect_args(database_url))
    try:
        with engine.begin() as conn:  # loads of a topic hold its advisory lock: no writer races us
            kept = dict(
                conn.execute(sa.select(lw.c.partition, lw.c.next_offset).where(lw.c.topic == topic)).all()
            )
            now = datetime.now(UTC)
            for partition, offset in offsets.items():
                if partition not in kept:
                    conn.execute(
                        lw.insert().values(
                            topic=topic,
                            partition=partition,
                            next_offset=offset,
                            run_id=run_id,
                            updated_at=now,
                        )
                    )
                elif offset > kept[partition]:
                    conn.execute(
                        lw.update()
                        .where(lw.c.topic == topic, lw.c.partition == partition)
                        .values(next_offset=offset, run_id=run_id, updated_at=now)
                    )
    finally:
        engine.dispose()


def unloaded_before(bootstrap: str, database_url: str, topics: Topics, month: str, tz: str) -> list[str]:
    """Months before ``month`` that have records on the valid topic and no load manifest, oldest first.

    Reads timestamps only, from the low-water offsets to the end (what the load itself would scan).
    """
    from sink.store import upgrade

    upgrade(database_url)
    start = low_water(bootstrap, database_url, topics.valid)
    ends = bus.end_offsets(bootstrap, topics.valid, COMPONENT)
    selection = Selection(month, tz, loaded_months(database_url, topics.valid), ends, allow_gap=False)
    scan = bus.scan(bootstrap, topics.valid, start, ends, component=COMPONENT)
    with contextlib.closing(scan):
        for record in scan:
            selection.classify(record)
    return sorted(selection.gaps)


def _refuse_late_since(
    bootstrap: str, topic: str, month: str, tz: str, ranges: Mapping[int, tuple[int, int]]
) -> None:
    """Raise :class:`LateRecordError` for the first record of ``month`` past its manifest's ranges."""
    start, end = Month.parse(month).bounds(tz)
    lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    scan = bus.scan(bootstrap, topic, {p: r[1] for p, r in ranges.items()}, component=COMPONENT)
    with contextlib.closing(scan):
        for record in scan:
            if lo <= record.timestamp < hi:
                pushed = datetime.fromtimestamp(record.timestamp / 1000, UTC)
                raise LateRecordError(month, month, record.partition, record.offset, pushed)


def default_read_processes() -> int:
    """Reading processes a load starts by default: half the cores, from one to four.

    Why half: reading (the scan, the decode, the rows) takes about as much CPU per event as the
    store's process and PostgreSQL together (issue 12: ≈ 50–60 µs against ≈ 15 + 36). On the
    2-core machine the benchmark runs on, one reader and two loaded the bench's month alike
    (6.76–7.12 s against 6.52–6.88 s at 100k; on another topic one was faster), and two cost ≈ 1.1 s
    more CPU (a second interpreter and consumer), so one it is there. ``regsync load --read-processes``
    sets it.
    """
    return max(1, min(4, (os.cpu_count() or 1) // 2))


@dataclass(frozen=True)
class LoadProgress:
    """Where a running load is, after a chunk it stored.

    ``stored`` counts the records of the chunks stored so far (duplicates included); ``span`` is the
    offsets the scan covers, an upper bound of the records the month can have (it also holds other
    months' records and transaction markers).
    """

    month: str
    stored: int
    span: int


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
    read_in_process: bool = True,
    read_processes: int | None = None,
    progress: Callable[[LoadProgress], None] | None = None,
) -> LoadResult:
    """Load one month (backfill = the same call for an older month).

    Refuses a month not yet over, one whose raw records the gate has not judged, one with an older
    unloaded month before it, and one whose scan meets a late record of a loaded month; raises
    :class:`~regsync.bookkeeping.locks.LockBusyError` while another load of the same valid topic runs.
    ``read_in_process=False`` reads in a thread of this process instead of child processes, of which
    there are otherwise ``read_processes`` (:class:`~regsync.stages.load_reader.ReaderPool`; default
    :func:`default_read_processes`).
    ``progress`` is called after each chunk stored, in the load's transaction.
    """
    if read_processes is None:
        read_processes = default_read_processes()
    if read_processes < 1:
        raise ValueError("read_processes must be at least 1")
    from regsync.bookkeeping.migrate import upgrade as upgrade_pipeline
    from sink.store import upgrade

    # The reading process starts now and imports what it needs while this one checks (load_reader).
    reader = ReaderPool([ProcessReader() for _ in range(read_processes)]) if read_in_process else None
    try:
        upgrade(database_url)  # the manifests table must exist before the order check reads it
        upgrade_pipeline(database_url)  # and the low-water table
        with advisory_lock(database_url, f"regsync.load:{topics.valid}"):
            return _load_locked(
                reader,
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
                progress=progress,
            )
    finally:
        if reader is not None:
            reader.close()


def _load_locked(
    reader: ReaderPool | None,
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
    progress: Callable[[LoadProgress], None] | None = None,
) -> LoadResult:
    import sqlalchemy as sa

    from sink.loader import find_manifest, load_month

    _, month_end = Month.parse(month).bounds(tz)
    if as_of is not None and as_of < month_end and not allow_open_month:
        raise ConfigurationError(
            f"month {month} is not over at {as_of.isoformat()}; loading it now would miss later pushes "
            "(use --allow-open-month to load it anyway and --replace later)"
        )
    if not allow_unjudged:
        waiting = unjudged(bootstrap, topics, month, tz)
        if waiting:
            raise UnjudgedMonthError(month, waiting)
    engine = sa.create_engine(database_url, connect_args=connect_args(database_url))
    run_id = f"load-{month}-{uuid.uuid4().hex[:8]}"
    logs.bind_run_id(run_id)
    try:
        existing = find_manifest(engine, month, topics.valid)
        if existing is not None and not replace:
            # Loaded already: the same ranges make the sink answer a no-op. A record of the month
            # that arrived after the load is said now, not only at the next month's load.
            ranges = {int(p): (int(r[0]), int(r[1])) for p, r in existing["offset_ranges"].items()}
            _refuse_late_since(bootstrap, topics.valid, month, tz, ranges)
            return load_month(
                engine,
                month=month,
                topic=topics.valid,
                positioned=(),
                offset_ranges=ranges,
                run_id=run_id,
                tz=tz,
            )
        ends = bus.end_offsets(bootstrap, topics.valid, COMPONENT)
        start = low_water(bootstrap, database_url, topics.valid)
        loaded = loaded_months(database_url, topics.valid)
        if existing is not None:  # --replace: the month's own records may lie before today's low-water
            loaded.pop(month, None)
            before = {int(p): int(r[0]) for p, r in existing["offset_ranges"].items()}
            start = {p: min(off, before.get(p, off)) for p, off in start.items()}
        # The scan, the selection, the decode and the rows run in a process of their own
        # (load_reader) — or, with read_in_process=False, in this one — handed over
        # through a thread that keeps a few batches ahead (ReadAhead); closing them stops all.
        spec = ReaderSpec(
            bootstrap=bootstrap,
            registry_url=registry_url,
            topics=topics,
            component=COMPONENT,
            month=month,
            tz=tz,
            start=start,
            ends=ends,
            loaded=loaded,
            allow_gap=allow_gap,
            binary=database_url.startswith("postgresql"),
        )
        rows = RowMaker(month, topics.valid, tz, binary=spec.binary)
        span = sum(max(0, end - start.get(p, end)) for p, end in ends.items())

        def on_chunk(_index: int, records: int) -> None:
            crash_point("load.in_transaction")
            if progress is not None:
                progress(LoadProgress(month, records, span))

        with contextlib.ExitStack() as stack:
            if reader is not None:
                records = reader.read(spec)
            else:
                selection = Selection(month, tz, loaded, ends, allow_gap=allow_gap)
                # closing(): if the store fails mid-month, the scan's consumer is closed here and
                # now, not by the garbage collector (where its close hung for minutes: issue 13)
                scan = stack.enter_context(
                    contextlib.closing(bus.scan(bootstrap, topics.valid, start, ends, component=COMPONENT))
                )
                records = positioned_events(registry_url, topics, selection.select(scan), rows)
            ahead = stack.enter_context(contextlib.closing(ReadAhead(records)))
            if reader is not None:
                # closed first: a stopped child ends the handing thread's wait on the pipe, so the
                # read-ahead's close (next) never waits on a child that has nothing more to say
                stack.callback(reader.close)
            result = load_month(
                engine,
                month=month,
                topic=topics.valid,
                positioned=ahead,
                offset_ranges={p: (start.get(p, end), end) for p, end in ends.items()},
                run_id=run_id,
                tz=tz,
                chunk_size=chunk_size,
                replace=replace,
                rows=rows,
                on_chunk=on_chunk,
            )
        next_start = selection.low_water if reader is None else reader.low_water
        if next_start is None:  # load_month read every record, so the reader said its end
            raise RuntimeError("the load's reader ended without its low-water offsets")
        crash_point("load.after_commit")  # committed, low-water not yet moved: the next scan is longer
        save_low_water(database_url, topics.valid, next_start, run_id)
        metrics.record_load(0 if result.noop else result.records, month_end.timestamp())
        return result
    finally:
        engine.dispose()
