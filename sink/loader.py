"""The monthly load: one month of ``registrations.valid`` into the filing store, in ONE transaction.

The caller (``regsync.stages.load``) reads the month from Kafka between the offsets a search of the records' timestamps
gives for the start of the month and of the next one, and hands the records here in per-partition
offset order (partitions may interleave). Everything the load writes — events, the folded roster,
the manifest — commits together or not at all, so:

* **re-running is a no-op**: a manifest for (month, topic) with the same offset ranges means the
  month is in; nothing is read (the iterable is not even consumed);
* **a crash leaves nothing**: no manifest, no events, the roster unchanged; the next run starts over;
* **an event is stored once**: ids already in the store (from another month, or replayed) are
  skipped and counted, and are not folded again;
* **different offset ranges** for a loaded month (it was loaded while still open) raise
  :class:`~sink.errors.MonthConflictError` unless ``replace=True`` — see :mod:`sink.rebuild`.

Memory stays flat as the month grows: records are consumed in chunks of ``chunk_size``; per chunk
one query finds ids already stored, one bulk insert stores the new events (a binary ``COPY`` of tuples on
PostgreSQL, an executemany on SQLite), then the roster is folded: on PostgreSQL one statement
(:mod:`sink.fold_sql`) folds and upserts the institutions whose events all take the snapshot; the
rest (all of them on SQLite) are fetched with one ``SELECT``, folded in memory from their decoded
Avro mappings (:func:`sink.fold.fold_record`; typed events are turned into theirs first) and
upserted at once. Running counts and one SHA-256 per
partition are all that outlive a chunk.

Concurrency: loads are serialised — on PostgreSQL by a transaction-level advisory lock (a second
run of the same month waits, then finds the manifest and returns a no-op) plus ``FOR UPDATE`` on the
touched roster rows; SQLite admits one writer at a time anyway (the second fails "database is
locked" after the driver's timeout, with nothing written).

Backfills: an event older (same partition, lower offset) than the last one folded into its
institution — a month loaded after a later one — is stored, and that institution is re-folded from
its whole stored history in order (:func:`sink.rebuild.refold`), so the roster never depends on the
order months were loaded in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import islice
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from schemas.events import RegistrationEvent
from schemas.month import DEFAULT_TIMEZONE
from sink.errors import MonthConflictError, PositionError
from sink.eventjson import record_to_json
from sink.fold import STATE_COLUMNS as _STATE_COLUMNS
from sink.fold import InstitutionState, Position, fold_record, is_behind, record_county
from sink.fold_sql import FOLD_CHUNK_SQL, FOLD_CHUNK_SQL_JOINED
from sink.models import institution_events, institutions, load_manifests
from sink.rebuild import delete_month, refold
from sink.store import (
    BinaryRowEncoder,
    column_types,
    copies,
    copy_encoded,
    copy_rows,
    insert_rows,
    upsert,
    upsert_rows,
)

__all__ = ["LoadResult", "PositionedEvent", "PositionedRecord", "RowMaker", "find_manifest", "load_month"]

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_LOCK_KEY = 0x7265_6773_796E_63  # "regsync": serialises loads on PostgreSQL


class PositionedEvent(NamedTuple):
    """A record of the topic: where it was read, its Kafka timestamp (ms), and the decoded event."""

    partition: int
    offset: int
    timestamp_ms: int | None
    event: RegistrationEvent


class PositionedRecord(NamedTuple):
    """:class:`PositionedEvent` with the event as the codec decodes it (the Avro mapping).

    What the monthly load hands over: building the typed model only for the loader to read it back
    was a fifth of the load's Python time (issue 12); the fold and the history document read the
    mapping directly (:func:`sink.fold.fold_record`, :func:`sink.eventjson.record_to_json`).
    ``row`` is its ``institution_events`` row when a :class:`RowMaker` made it ahead (see there),
    and ``encoded`` that row in binary ``COPY`` format; a row that comes with its encoding may come
    without its document (``None`` last), which the encoding holds.
    """

    partition: int
    offset: int
    timestamp_ms: int | None
    record: Mapping[str, Any]
    row: tuple[Any, ...] | None = None
    encoded: bytes | None = None


class RowMaker:
    """Builds a record's ``institution_events`` row (history document included) away from the store.

    Why: the row — masking the document, encoding it as JSON, the county, whether it is late — is
    the largest piece of the load's own Python (≈ 12 µs an event), and it needs nothing from the
    database. The load's caller runs :meth:`prepare` in the thread that reads and decodes ahead
    (``regsync.stages.load.ReadAhead``), so it happens while the main thread waits on PostgreSQL
    for the previous chunk, instead of between two of its statements. :func:`load_month` takes
    the maker that made the rows and refuses one made for another month, topic or time zone; a
    record without a row gets one made on the spot, so nothing depends on the caller doing this.
    """

    def __init__(self, month: str, topic: str, tz: str = DEFAULT_TIMEZONE, *, binary: bool = False) -> None:
        if _MONTH.fullmatch(month) is None:
            raise ValueError(f"month must be YYYY-MM, got {month!r}")
        self.month, self.topic, self.tz = month, topic, tz
        # binary: also encode each row for PostgreSQL's binary COPY (sink.store.BinaryRowEncoder)
        self.encoder = BinaryRowEncoder(_EVENT_TYPES) if binary else None
        zone = ZoneInfo(tz)
        year, mon = int(month[:4]), int(month[5:])
        start = datetime(year, mon, 1, tzinfo=zone)
        end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
        self._zone = zone
        self._month_ms = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        self._month_number = year * 100 + mon

    def in_month(self, timestamp_ms: int | None) -> bool:
        """Whether the record was pushed inside the month (a missing timestamp counts as inside)."""
        return (
            timestamp_ms is None or timestamp_ms < 0 or self._month_ms[0] <= timestamp_ms < self._month_ms[1]
        )

    def pushed_month(self, timestamp_ms: int | None) -> int:
        """The month the record was pushed in, as ``year * 100 + month`` (see :func:`_month_number`)."""
        if self.in_month(timestamp_ms):
            return self._month_number
        assert timestamp_ms is not None
        return _month_number(datetime.fromtimestamp(timestamp_ms / 1000, self._zone))

    def row(self, rec: PositionedRecord) -> tuple[Any, ...]:
        """The row in :data:`_EVENT_COLUMNS` order; the history document as UTF-8 JSON bytes."""
        record = rec.record
        event_date = record["event_date"]
        timestamp_ms = rec.timestamp_ms
        return (
            record["event_id"],
            record["institution"]["uscc"],
            str(record["event_type"]),
            str(record["registrar"]),
            event_date,
            record["extracted_at"],
            None
            if timestamp_ms is None or timestamp_ms < 0
            else datetime.fromtimestamp(timestamp_ms / 1000, UTC),
            record_county(record),
            self.month,
            self.topic,
            rec.partition,
            rec.offset,
            _month_number(event_date) < self.pushed_month(timestamp_ms),
            _dumps(record_to_json(record)),
        )

    def prepare(
        self, partition: int, offset: int, timestamp_ms: int | None, record: Mapping[str, Any]
    ) -> PositionedRecord:
        """The positioned record with its row made (what the reading thread calls on every record)."""
        row = self.row(PositionedRecord(partition, offset, timestamp_ms, record))
        encoded = None if self.encoder is None else self.encoder.encode(row)
        return PositionedRecord(partition, offset, timestamp_ms, record, row, encoded)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What a load did. ``noop`` means the month was already loaded from these exact ranges.

    ``out_of_month`` counts records whose Kafka timestamp falls outside the month in ``tz`` (zero
    when the ranges come from the time index); they are loaded, and ``late`` is judged against the
    month they were actually pushed in.
    """

    month: str
    topic: str
    run_id: str
    noop: bool
    replaced: bool
    records: int
    inserted: int
    duplicates: int
    institutions_touched: int
    late: int
    checksum: str
    offset_ranges: dict[int, tuple[int, int]]
    chunks: int = 0
    out_of_month: int = 0


def find_manifest(conn: sa.Connection | sa.Engine, month: str, topic: str) -> Mapping[str, Any] | None:
    """The stored manifest of (month, topic), or ``None`` — lets the caller skip reading Kafka."""
    query = sa.select(load_manifests).where(load_manifests.c.month == month, load_manifests.c.topic == topic)
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            row = c.execute(query).mappings().first()
    else:
        row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def load_month(
    engine: sa.Engine,
    *,
    month: str,
    topic: str,
    positioned: Iterable[PositionedEvent | PositionedRecord],
    offset_ranges: Mapping[int, tuple[int, int]],
    run_id: str,
    tz: str = DEFAULT_TIMEZONE,
    chunk_size: int = 1000,
    on_chunk: Callable[[int, int], None] | None = None,
    replace: bool = False,
    sql_fold: bool = True,
    rows: RowMaker | None = None,
) -> LoadResult:
    """Load ``month`` (``YYYY-MM``) of ``topic`` in one transaction; see the module docstring.

    ``offset_ranges`` maps partition → half-open ``[start, end)`` offsets (transaction markers make
    gaps, so the record count may be smaller). A record is ``late`` when its event date's month is
    earlier than the month it was pushed in — its Kafka timestamp read in ``tz``, which is ``month``
    itself whenever the ranges come from the time index (``month`` if the timestamp is missing).
    ``on_chunk(i, records)`` is called after each chunk, inside the transaction, with the 0-based
    chunk index and the records taken so far, duplicates included (a hook for fault tests and
    progress bars). ``replace`` reloads a month whose manifest has other
    offset ranges (:mod:`sink.rebuild` says how the roster is recomputed). ``sql_fold=False`` folds
    every institution in Python on PostgreSQL too (:mod:`sink.fold_sql` is checked against it).
    ``rows`` is the :class:`RowMaker` that made the records' rows ahead, if one did.
    """
    if _MONTH.fullmatch(month) is None:
        raise ValueError(f"month must be YYYY-MM, got {month!r}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    ranges = {int(p): (int(s), int(e)) for p, (s, e) in offset_ranges.items()}
    for p, (s, e) in ranges.items():
        if s < 0 or e < s:
            raise ValueError(f"partition {p}: offset range [{s}, {e}) is not a range")
    stored_ranges = {str(p): [s, e] for p, (s, e) in sorted(ranges.items())}
    if rows is not None and (rows.month, rows.topic, rows.tz) != (month, topic, tz):
        raise ValueError(
            f"the rows were made for {rows.month} of {rows.topic} in {rows.tz}, not {month} of {topic} in {tz}"
        )
    maker = rows or RowMaker(month, topic, tz)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        existing = find_manifest(conn, month, topic)
        if existing is not None:
            if existing["offset_ranges"] == stored_ranges:
                return _noop(existing, ranges)
            if not replace:
                raise MonthConflictError(
                    f"{month} of {topic} was loaded from offsets {existing['offset_ranges']} "
                    f"(run {existing['run_id']}), not {stored_ranges}; pass replace=True to reload it"
                )
            delete_month(conn, month=month, topic=topic, page_size=chunk_size)
        run = _Run(conn, month, topic, ranges, maker)
        run.sql_fold = sql_fold
        for index, chunk in enumerate(_chunks(positioned, chunk_size)):
            run.load_chunk(chunk)
            run.chunks += 1
            if on_chunk is not None:
                on_chunk(index, run.records)
        touched = conn.execute(
            sa.select(sa.func.count(sa.distinct(institution_events.c.uscc))).where(
                institution_events.c.load_month == month, institution_events.c.kafka_topic == topic
            )
        ).scalar_one()
        result = LoadResult(
            month=month,
            topic=topic,
            run_id=run_id,
            noop=False,
            replaced=existing is not None,
            records=run.records,
            inserted=run.inserted,
            duplicates=run.duplicates,
            institutions_touched=touched,
            late=run.late,
            checksum=run.checksum(),
            offset_ranges=ranges,
            chunks=run.chunks,
            out_of_month=run.out_of_month,
        )
        conn.execute(
            load_manifests.insert().values(
                month=month,
                topic=topic,
                offset_ranges=stored_ranges,
                records=result.records,
                inserted=result.inserted,
                duplicates=result.duplicates,
                institutions_touched=touched,
                late=result.late,
                checksum=result.checksum,
                loaded_at=datetime.now(UTC),
                run_id=run_id,
            )
        )
    return result


def _noop(manifest: Mapping[str, Any], ranges: dict[int, tuple[int, int]]) -> LoadResult:
    return LoadResult(
        month=manifest["month"],
        topic=manifest["topic"],
        run_id=manifest["run_id"],
        noop=True,
        replaced=False,
        records=manifest["records"],
        inserted=manifest["inserted"],
        duplicates=manifest["duplicates"],
        institutions_touched=manifest["institutions_touched"],
        late=manifest["late"],
        checksum=manifest["checksum"],
        offset_ranges=ranges,
    )


def _chunks(
    items: Iterable[PositionedEvent | PositionedRecord], size: int
) -> Iterator[list[PositionedRecord]]:
    """Chunks of ``size`` records, typed events turned into their Avro mapping (one path below)."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield [
            PositionedRecord(r.partition, r.offset, r.timestamp_ms, r.event.to_avro())
            if isinstance(r, PositionedEvent)
            else r
            for r in chunk
        ]


class _Run:
    """The state of one load that outlives a chunk: counts, per-partition hashes and positions."""

    def __init__(
        self, conn: sa.Connection, month: str, topic: str, ranges: dict[int, tuple[int, int]], maker: RowMaker
    ) -> None:
        self.conn, self.month, self.topic, self.ranges, self.maker = conn, month, topic, ranges, maker
        self.records = self.inserted = self.duplicates = self.late = self.out_of_month = self.chunks = 0
        self._last: dict[int, int] = {}
        self._hashes: dict[int, Any] = {p: hashlib.sha256() for p in ranges}
        self._lock_rows = conn.dialect.name == "postgresql"
        # a binary COPY of tuples (JSON text as bytes); else an executemany of mappings
        self._copy = copies(conn)
        self._types = column_types(conn, institution_events, _EVENT_COLUMNS) if self._copy else None
        # rows the maker encoded ahead are sent as they are if they were encoded for these columns
        self._encoded = maker.encoder is not None and self._types == maker.encoder.oids
        self.sql_fold = True  # on PostgreSQL, the plain institutions folded set-based (sink.fold_sql)

    def checksum(self) -> str:
        """SHA-256 over the per-partition SHA-256s of the event ids in offset order.

        Per partition first, so the value depends only on what the ranges held, not on how the
        caller interleaved partitions; every record counts, duplicates included.
        """
        outer = hashlib.sha256()
        for partition in sorted(self._hashes):
            outer.update(f"{partition}:{self._hashes[partition].hexdigest()}\n".encode())
        return outer.hexdigest()

    def _observe(self, rec: PositionedRecord) -> str:
        # from the row when made ahead: the record itself may not be decoded on this side
        event_id: str = rec.row[0] if rec.row is not None else rec.record["event_id"]
        bounds = self.ranges.get(rec.partition)
        if (
            bounds is None
            or not bounds[0] <= rec.offset < bounds[1]
            or rec.offset <= self._last.get(rec.partition, -1)
        ):
            where = f"{self.topic}[{rec.partition}]@{rec.offset} (event {event_id})"
            if bounds is None:
                raise PositionError(f"{where}: partition not in the declared offset ranges {self.ranges}")
            if not bounds[0] <= rec.offset < bounds[1]:
                raise PositionError(f"{where}: offset outside the declared range [{bounds[0]}, {bounds[1]})")
            last = self._last[rec.partition]
            raise PositionError(f"{where}: offsets must increase within a partition (previous {last})")
        self._last[rec.partition] = rec.offset
        self._hashes[rec.partition].update(event_id.encode() + b"\n")
        self.records += 1
        return event_id

    def _among(self, column: sa.Column[str], values: Iterable[str]) -> sa.ColumnElement[bool]:
        """``column IN values``; on PostgreSQL as ``= ANY(array)``: one parameter, not a thousand.

        A thousand-parameter statement is a new query text for the driver every time (too long for
        its cache) and costs more to parse than the lookup it asks for.
        """
        if self._lock_rows:
            values = list(values)
            joined = joined_ids(values)
            if joined is not None:  # one text PostgreSQL splits (see joined_ids)
                return column == sa.any_(
                    sa.func.string_to_array(sa.bindparam(None, joined, type_=sa.Text), "\n")
                )
            return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))
        return column.in_(values)

    def load_chunk(self, chunk: list[PositionedRecord]) -> None:
        """Insert the chunk's new events (one COPY on PostgreSQL) and fold them into the roster (one upsert)."""
        ids = [self._observe(rec) for rec in chunk]
        ev = institution_events
        seen = set(self.conn.scalars(sa.select(ev.c.event_id).where(self._among(ev.c.event_id, ids))))
        fresh: list[PositionedRecord] = []
        for event_id, rec in zip(ids, chunk, strict=True):
            if event_id in seen:
                self.duplicates += 1
                continue
            seen.add(event_id)
            fresh.append(rec)
        if not fresh:
            return
        maker, rows = self.maker, []
        for rec in fresh:
            row = rec.row
            if row is None or (row[-1] is None and not self._encoded):  # none, or sent without its document
                row = maker.row(rec)
            self.late += row[12]
            self.out_of_month += not maker.in_month(rec.timestamp_ms)
            rows.append(row if self._copy else (*row[:-1], record_to_json(rec.record)))
        if self._encoded:
            encoder = maker.encoder
            assert encoder is not None
            encoded = [
                rec.encoded if rec.encoded is not None else encoder.encode(row)
                for rec, row in zip(fresh, rows, strict=True)
            ]
            copy_encoded(self.conn, ev, _EVENT_COLUMNS, encoded)
        elif self._copy:
            copy_rows(self.conn, ev, _EVENT_COLUMNS, rows, types=self._types)
        else:  # SQLite: executemany of mappings
            insert_rows(self.conn, ev, [dict(zip(_EVENT_COLUMNS, row, strict=True)) for row in rows])
        self.inserted += len(rows)
        if self._copy and self.sql_fold:
            # the plain institutions folded and upserted by one statement; the rest come back here
            stored = [row[0] for row in rows]
            joined = joined_ids(stored)
            fold_sql = FOLD_CHUNK_SQL if joined is None else FOLD_CHUNK_SQL_JOINED
            params = {"ids": stored if joined is None else joined, "topic": self.topic, "month": self.month}
            left = {uscc for (uscc,) in self.conn.exec_driver_sql(fold_sql, params)}
            if not left:
                return
            fresh = [rec for rec, row in zip(fresh, rows, strict=True) if row[1] in left]
        self._fold(fresh)

    def _fold(self, fresh: list[PositionedRecord]) -> None:
        """The Python fold of ``fresh`` (stored already) into the roster: one locked read, one upsert."""
        usccs = {rec.record["institution"]["uscc"] for rec in fresh}
        query = sa.select(institutions).where(self._among(institutions.c.uscc, usccs))
        if self._lock_rows:
            query = query.with_for_update()
        states = {r["uscc"]: InstitutionState.from_row(r) for r in self.conn.execute(query).mappings()}
        behind: set[str] = set()
        month, topic = self.month, self.topic
        for rec in fresh:
            uscc = rec.record["institution"]["uscc"]
            position = Position(topic, rec.partition, rec.offset)
            if uscc in behind or is_behind(states.get(uscc), position):
                behind.add(uscc)  # a backfill: re-fold the whole history below, in order
            else:
                states[uscc] = fold_record(states.get(uscc), rec.record, position=position, load_month=month)
        folded = [s for u, s in states.items() if u not in behind]
        if self._copy:
            upsert_rows(self.conn, institutions, _STATE_COLUMNS, [s.to_tuple() for s in folded], key=["uscc"])
        else:
            upsert(self.conn, institutions, [s.to_row() for s in folded], key=["uscc"])
        if behind:
            refold(self.conn, behind)


_EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "uscc",
    "event_type",
    "registrar",
    "event_date",
    "extracted_at",
    "pushed_at",
    "county_code",
    "load_month",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "late",
    "event_json",
)
"""The order :meth:`_Run.load_chunk` builds an event row in (every column of ``institution_events``)."""

_EVENT_TYPES: tuple[str, ...] = (
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "date",
    "timestamptz",
    "timestamptz",
    "varchar",
    "varchar",
    "varchar",
    "int4",
    "int8",
    "bool",
    "jsonb",
)
"""The PostgreSQL types of :data:`_EVENT_COLUMNS` as the models make them; rows encoded ahead with
these are used only when the database's catalog says the same (:class:`_Run`)."""

_ENCODER = msgspec.json.Encoder()


def _month_number(day: date) -> int:
    """``year * 100 + month``: months compare as these numbers do.

    Why not ``strftime("%Y-%m")`` strings as before: the formatting cost ≈ 1.1 µs an event against
    0.06 (issue 12). Both order every year from 1000 on alike (the strings, unpadded below that,
    did not).
    """
    return day.year * 100 + day.month


def joined_ids(ids: list[str]) -> str | None:
    """The ids as ONE text, one per line, for PostgreSQL's ``string_to_array``; None if an id holds a newline.

    Why: psycopg dumps a list parameter element by element in Python (≈ 1.3 µs an id, twice per
    chunk: the duplicate check and the fold); one string is one copy in C (≈ 0.2 µs an id) and
    PostgreSQL splits it. An id with a newline in it (the gate would not pass one, but the store does not
    rely on that) makes the caller send the list as before, and so does ``[""]`` (PostgreSQL splits an
    empty text into no element at all).
    """
    text = "\n".join(ids)
    return text if text and text.count("\n") == len(ids) - 1 else None


def _dumps(doc: Mapping[str, Any]) -> bytes:
    """The history document as UTF-8 JSON text, written by the binary COPY as is (``jsonb`` parses it).

    msgspec rather than the standard library's encoder: about 5 µs a document instead of 24 here,
    the largest single cost left in the load's own code (issue 12). The document is already made of
    JSON types (:func:`sink.eventjson.record_to_json`), so both encoders give the same JSON value;
    Chinese is kept as is. Bytes, not ``str``: the binary COPY sends them without decoding and
    encoding again (:func:`sink.store.copy_rows`).
    """
    return _ENCODER.encode(doc)
