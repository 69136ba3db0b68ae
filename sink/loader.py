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
one query finds ids already stored, one ``SELECT`` fetches the touched institutions, the events are
folded in memory (:func:`sink.fold.fold`), then one bulk insert stores the events (a ``COPY`` on
PostgreSQL, an executemany on SQLite) and one upsert the roster. Running counts and one SHA-256 per
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
from datetime import UTC, datetime
from itertools import islice
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from schemas.events import RegistrationEvent
from schemas.month import DEFAULT_TIMEZONE
from sink.errors import MonthConflictError, PositionError
from sink.eventjson import event_to_json
from sink.fold import InstitutionState, Position, event_county, fold, is_behind
from sink.models import institution_events, institutions, load_manifests
from sink.rebuild import delete_month, refold
from sink.store import insert_rows, upsert

__all__ = ["LoadResult", "PositionedEvent", "find_manifest", "load_month"]

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_LOCK_KEY = 0x7265_6773_796E_63  # "regsync": serialises loads on PostgreSQL


class PositionedEvent(NamedTuple):
    """A record of the topic: where it was read, its Kafka timestamp (ms), and the decoded event."""

    partition: int
    offset: int
    timestamp_ms: int | None
    event: RegistrationEvent


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
    positioned: Iterable[PositionedEvent],
    offset_ranges: Mapping[int, tuple[int, int]],
    run_id: str,
    tz: str = DEFAULT_TIMEZONE,
    chunk_size: int = 1000,
    on_chunk: Callable[[int], None] | None = None,
    replace: bool = False,
) -> LoadResult:
    """Load ``month`` (``YYYY-MM``) of ``topic`` in one transaction; see the module docstring.

    ``offset_ranges`` maps partition → half-open ``[start, end)`` offsets (transaction markers make
    gaps, so the record count may be smaller). A record is ``late`` when its event date's month is
    earlier than the month it was pushed in — its Kafka timestamp read in ``tz``, which is ``month``
    itself whenever the ranges come from the time index (``month`` if the timestamp is missing).
    ``on_chunk(i)`` is called with the 0-based chunk index after each chunk, inside the transaction
    (a hook for fault tests and progress bars). ``replace`` reloads a month whose manifest has other
    offset ranges (:mod:`sink.rebuild` says how the roster is recomputed).
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
        run = _Run(conn, month, topic, ranges, ZoneInfo(tz))
        for index, chunk in enumerate(_chunks(positioned, chunk_size)):
            run.load_chunk(chunk)
            run.chunks += 1
            if on_chunk is not None:
                on_chunk(index)
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


def _chunks(items: Iterable[PositionedEvent], size: int) -> Iterator[list[PositionedEvent]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class _Run:
    """The state of one load that outlives a chunk: counts, per-partition hashes and positions."""

    def __init__(
        self, conn: sa.Connection, month: str, topic: str, ranges: dict[int, tuple[int, int]], tz: ZoneInfo
    ) -> None:
        self.conn, self.month, self.topic, self.ranges, self.tz = conn, month, topic, ranges, tz
        self.records = self.inserted = self.duplicates = self.late = self.out_of_month = self.chunks = 0
        self._last: dict[int, int] = {}
        self._hashes: dict[int, Any] = {p: hashlib.sha256() for p in ranges}
        year, mon = int(month[:4]), int(month[5:])
        start = datetime(year, mon, 1, tzinfo=tz)
        end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=tz)
        self._month_ms = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        self._lock_rows = conn.dialect.name == "postgresql"

    def checksum(self) -> str:
        """SHA-256 over the per-partition SHA-256s of the event ids in offset order.

        Per partition first, so the value depends only on what the ranges held, not on how the
        caller interleaved partitions; every record counts, duplicates included.
        """
        outer = hashlib.sha256()
        for partition in sorted(self._hashes):
            outer.update(f"{partition}:{self._hashes[partition].hexdigest()}\n".encode())
        return outer.hexdigest()

    def _observe(self, rec: PositionedEvent) -> None:
        bounds = self.ranges.get(rec.partition)
        where = f"{self.topic}[{rec.partition}]@{rec.offset} (event {rec.event.event_id})"
        if bounds is None:
            raise PositionError(f"{where}: partition not in the declared offset ranges {self.ranges}")
        if not bounds[0] <= rec.offset < bounds[1]:
            raise PositionError(f"{where}: offset outside the declared range [{bounds[0]}, {bounds[1]})")
        last = self._last.get(rec.partition)
        if last is not None and rec.offset <= last:
            raise PositionError(f"{where}: offsets must increase within a partition (previous {last})")
        self._last[rec.partition] = rec.offset
        self._hashes[rec.partition].update(rec.event.event_id.encode() + b"\n")
        self.records += 1

    def _pushed_month(self, timestamp_ms: int | None) -> str:
        if timestamp_ms is None or timestamp_ms < 0:
            return self.month
        if self._month_ms[0] <= timestamp_ms < self._month_ms[1]:
            return self.month
        self.out_of_month += 1
        return datetime.fromtimestamp(timestamp_ms / 1000, self.tz).strftime("%Y-%m")

    def _among(self, column: sa.Column[str], values: Iterable[str]) -> sa.ColumnElement[bool]:
        """``column IN values``; on PostgreSQL as ``= ANY(array)``: one parameter, not a thousand.

        A thousand-parameter statement is a new query text for the driver every time (too long for
        its cache) and costs more to parse than the lookup it asks for.
        """
        if self._lock_rows:
            return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
        return column.in_(values)

    def load_chunk(self, chunk: list[PositionedEvent]) -> None:
        """Insert the chunk's new events (one COPY on PostgreSQL) and fold them into the roster (one upsert)."""
        for rec in chunk:
            self._observe(rec)
        ids = [rec.event.event_id for rec in chunk]
        ev = institution_events
        seen = set(self.conn.scalars(sa.select(ev.c.event_id).where(self._among(ev.c.event_id, ids))))
        fresh: list[PositionedEvent] = []
        for rec in chunk:
            if rec.event.event_id in seen:
                self.duplicates += 1
                continue
            seen.add(rec.event.event_id)
            fresh.append(rec)
        if not fresh:
            return
        usccs = {rec.event.institution.uscc for rec in fresh}
        query = sa.select(institutions).where(self._among(institutions.c.uscc, usccs))
        if self._lock_rows:
            query = query.with_for_update()
        states = {r["uscc"]: InstitutionState.from_row(r) for r in self.conn.execute(query).mappings()}
        rows = []
        behind: set[str] = set()
        for rec in fresh:
            event = rec.event
            uscc = event.institution.uscc
            position = Position(self.topic, rec.partition, rec.offset)
            if uscc in behind or is_behind(states.get(uscc), position):
                behind.add(uscc)  # a backfill: re-fold the whole history below, in order
            else:
                states[uscc] = fold(states.get(uscc), event, position=position, load_month=self.month)
            late = event.event_date.strftime("%Y-%m") < self._pushed_month(rec.timestamp_ms)
            self.late += late
            rows.append(
                {
                    "event_id": event.event_id,
                    "uscc": uscc,
                    "event_type": event.event_type.value,
                    "registrar": event.registrar.value,
                    "event_date": event.event_date,
                    "extracted_at": event.extracted_at,
                    "pushed_at": None
                    if rec.timestamp_ms is None or rec.timestamp_ms < 0
                    else datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC),
                    "county_code": event_county(event),
                    "load_month": self.month,
                    "kafka_topic": self.topic,
                    "kafka_partition": rec.partition,
                    "kafka_offset": rec.offset,
                    "late": late,
                    "event_json": event_to_json(event),
                }
            )
        insert_rows(self.conn, ev, rows)
        upsert(
            self.conn, institutions, [s.to_row() for u, s in states.items() if u not in behind], key=["uscc"]
        )
        if behind:
            refold(self.conn, behind)
        self.inserted += len(rows)
