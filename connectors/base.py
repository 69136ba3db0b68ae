"""The shared base of every registrar connector: its contract as data, its state, its batches.

A connector is declared like a Singer tap: a :class:`ConnectorSpec` (name, registrar, key, cursor
field) plus one generator, :meth:`Connector.batches`. The base owns what every source needs the same
way — the high-water-mark cursor with tie handling, the childcare filter, county resolution, event
building — so a registrar module only maps its own rows.

Connectors never talk to Kafka or to the pipeline's state database. They yield :class:`Batch` objects,
each carrying the state to commit *after* its events are acknowledged; the composition root
(``regsync.stages.extract``) publishes, waits for the broker, and only then commits that state.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo

from schemas import childcare, divisions
from schemas.errors import FatalError, RecordError, RegsyncError, RetriableError
from schemas.events import (
    UNRESOLVED,
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    LegalRepresentative,
    Registrar,
)
from schemas.masking import mask_phone, mask_resident_id, mask_text
from schemas.resident_id import parse_resident_id


class ConnectorError(RegsyncError):
    """Base of connector errors; messages name the source and, where known, the record key."""


class UnusableRecord(ConnectorError, RecordError, ValueError):
    """One source row that cannot become an event: it goes to the connector DLQ, the run goes on."""


class FatalSourceError(ConnectorError, FatalError):
    """The source cannot be read (bad credentials, schema changed): a person must act."""


# The cursor lives in its own module (re-exported here), imported after the errors it raises.
from connectors.watermark import HighWatermark as HighWatermark  # noqa: E402
from connectors.watermark import watermark_pages as watermark_pages  # noqa: E402


class RetriableSourceError(ConnectorError, RetriableError):
    """The source failed transiently (HTTP 5xx, 429, connection reset) and retries ran out."""


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """A connector's contract, as data."""

    name: str
    registrar: Registrar
    source_system: str
    key: str
    cursor_field: str
    description: str
    surfaced_field: str | None = None
    """The row field that says when the row became available in the registrar's system (its change
    time), if the source has a trustworthy one; extraction stamps the push with it (see
    :func:`surfaced_instant` and docs/domain.md, "pushed in month M"). ``None``: the poll's as-of."""


REGISTRAR_TIME: Final = ZoneInfo("Asia/Shanghai")
"""The registrar systems stamp rows in Beijing time without an offset, whatever the pipeline's zone."""

MAX_RAW_BYTES: Final = 64 * 1024
"""A DLQ record keeps at most this much of the raw row (plus its full size): the DLQ must stay producible."""


@dataclass(frozen=True, slots=True)
class InvalidRecord:
    """A source row that could not become an event at all; it goes to the DLQ, never silently away."""

    source_record_id: str
    raw: bytes  # the row as the source gave it (JSON, UTF-8) so the DLQ shows exactly what came in
    reason: str

    @classmethod
    def of(cls, source_record_id: str, row: Any, reason: str) -> InvalidRecord:
        """The DLQ entry of ``row``: as JSON, resident IDs and phones masked (PIPL), truncated if huge."""
        raw, size = dlq_bytes(row)
        if size > len(raw):
            reason = f"{reason} (raw row {size:,} bytes, first {len(raw):,} kept)"
        return cls(source_record_id, raw, reason)


def dlq_bytes(row: Any, limit: int = MAX_RAW_BYTES) -> tuple[bytes, int]:
    """``row`` as masked UTF-8 JSON cut to ``limit`` bytes, and its full size."""
    if isinstance(row, bytes | bytearray):
        text = bytes(row).decode("utf-8", errors="replace")
    elif isinstance(row, str):
        text = row
    else:
        if isinstance(row, Mapping):
            row = dict(row)
        text = json.dumps(row, ensure_ascii=False, default=str, sort_keys=True)
    data = mask_text(text).encode("utf-8")
    return data[:limit].decode("utf-8", errors="ignore").encode("utf-8"), len(data)


Made = Any  # RegistrationEvent | None (not childcare)


def guarded(label: str, record_id: str, row: Any, make: Callable[[], Made]) -> Made | InvalidRecord:
    """``make()``, or the row's DLQ entry when anything goes wrong turning it into an event.

    The base owns this catch so no connector keeps its own list: a ``TypeError`` from a value of
    the wrong type is as much a bad row as an unknown code. Errors about the source as a whole
    (fatal, retriable) still stop the run.
    """
    try:
        return make()
    except (FatalError, RetriableError):
        raise
    except Exception as exc:
        detail = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
        reason = detail if detail.startswith(label) else f"{label}: {detail}"
        return InvalidRecord.of(record_id, row, reason)


@dataclass(slots=True)
class Batch:
    """Events to publish, the counts behind them, and the state to commit once they are acked."""

    events: list[Any] = field(default_factory=list)  # RegistrationEvent
    read: int = 0
    not_childcare: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    cursor_values: list[str] = field(default_factory=list)
    invalid: list[InvalidRecord] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # what waits and why, for the run summary
    surfaced: dict[str, datetime] = field(default_factory=dict)  # event id → the source's change time


@dataclass(frozen=True, slots=True)
class ExtractContext:
    """What a run knows about time: the pipeline's "as of" clock, used as extraction time."""

    extracted_at: datetime
    run_id: str
    batch_size: int = 500

    def local_end(self, fmt: str) -> str:
        """The high-water mark's end bound: the as-of instant on the registrars' clock, as ``fmt`` text.

        Rows stamped after the as-of wait for the next run (like dlt's ``Incremental(end_value)``),
        so a run stamped for the 31st never takes what surfaced on the 1st into the month before.
        """
        return self.extracted_at.astimezone(REGISTRAR_TIME).strftime(fmt)


class Connector(ABC):
    """One registrar system. Subclasses set ``spec`` and implement :meth:`batches`."""

    spec: ClassVar[ConnectorSpec]

    @abstractmethod
    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        """Yield batches in cursor order, each with the state to commit after it is published.

        Extract asks for the next batch while the broker still acknowledges the one before (its
        state is not committed yet): a yielded batch's state must not be changed afterwards, and
        nothing after a ``yield`` may assume that batch was committed.
        """

    def take(self, batch: Batch, record_id: str, row: Any, make: Callable[[], Made], label: str = "") -> None:
        """Account for one row in ``batch``: an event, not childcare (``make`` gives None), or the DLQ."""
        out = guarded(label or f"{self.spec.name}: record {record_id}", record_id, row, make)
        if isinstance(out, InvalidRecord):
            batch.invalid.append(out)
        elif out is None:
            batch.not_childcare += 1
        else:
            batch.events.append(out)
            batch.cursor_values.append(out.lineage.cursor_value or "")
            if self.spec.surfaced_field is not None and isinstance(row, Mapping):
                self.note_surfaced(batch, out.event_id, row.get(self.spec.surfaced_field))

    @staticmethod
    def note_surfaced(batch: Batch, event_id: str, value: Any) -> None:
        """Keep the event's change time for the push stamp; a missing or garbled one is left out."""
        moment = surfaced_instant(value)
        if moment is not None:
            batch.surfaced[event_id] = moment

    # shared helpers ---------------------------------------------------------------------------
    @staticmethod
    def is_childcare(scope: str | None, name: str | None, industry: str | None = None) -> bool:
        """The childcare test of DOMAIN.md, over scope and name (and industry code when known)."""
        return childcare.classify(scope or "", name or "", industry_code=industry).is_childcare

    @staticmethod
    def resolve_county(
        address: str | None, stated_code: str | None = None
    ) -> tuple[str | None, CountyResolution]:
        """Route by the premises' address (or a stated premises code), never by USCC digits 3–8."""
        result = divisions.resolve_address(address or "", stated_code=stated_code or None)
        code = result.county_code
        if code is None:
            return None, UNRESOLVED
        method = (
            CountyResolutionMethod.STATED
            if (result.source or "").startswith("stated")
            else CountyResolutionMethod.ADDRESS
        )
        confidence = _CONFIDENCE.get(str(result.confidence.value) if result.confidence else "", 0.0)
        return code, CountyResolution(method, confidence)


# The resolver's verbal confidence, as the 0–1 figure the event contract carries.
_CONFIDENCE = {"high": 0.95, "medium": 0.7, "low": 0.4}


def surfaced_instant(value: Any) -> datetime | None:
    """A source's change time as an aware instant, or ``None`` when absent or unreadable.

    Registrar systems write Beijing time without an offset (:data:`REGISTRAR_TIME`); a value that
    carries an offset keeps it. Never raises: a garbled change time only means the push is stamped
    with the poll's as-of, which is what sources without a change time get anyway.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=REGISTRAR_TIME)


def parse_date(value: str | date | None) -> date | None:
    """Accept the date spellings registrar systems use: 2026-01-05, 2026/1/5, 20260105."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if not text:
        return None
    for sep in ("-", "/", "."):
        if sep in text:
            y, m, d = text.split(" ")[0].split(sep)[:3]
            return date(int(y), int(m), int(d))
    if len(text) >= 8 and text[:8].isdigit():
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    raise ValueError(f"unrecognised date {value!r}")


def event_type_from(code: str, mapping: Mapping[str, EventType], source: str, key: str) -> EventType:
    """Map a registrar's own change code; an unknown code is an error naming source and record."""
    try:
        return mapping[code]
    except KeyError:
        raise UnusableRecord(f"{source}: unknown change code {code!r} on record {key}") from None


def dumps_state(state: Mapping[str, Any]) -> str:
    """Stable JSON for the state database."""
    return json.dumps(state, ensure_ascii=False, sort_keys=True)


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Fixed-size lists from any iterable (itertools.batched is 3.12+; we support 3.11)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def legal_representative(
    name: str | None, id_number: str | None, phone: str | None, today: date
) -> LegalRepresentative:
    """The legal representative as events carry them: ID and phone masked, the ID's validity kept.

    ``today`` (the run's as-of date) keeps the future-birth-date check reproducible on replays.
    """
    number = (id_number or "").strip()
    return LegalRepresentative(
        name=(name or "").strip(),
        id_number_masked=mask_resident_id(number) or None,
        id_valid=parse_resident_id(number, today=today).is_valid if number else None,
        phone_masked=mask_phone(phone) or None,
    )


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP date (RFC 9110); ``None`` if absent or bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        moment = parsedate_to_datetime(value)  # naive only for "-0000", which means UTC
        return max(0.0, (moment.replace(tzinfo=moment.tzinfo or UTC) - datetime.now(UTC)).total_seconds())
    return None
