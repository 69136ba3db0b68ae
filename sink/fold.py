"""An institution's roster state as the fold of its events, in order — a pure function.

``fold(state, event)`` is the single definition of how an event changes the roster (it is
``fold_record(state, event.to_avro())``: the load folds the decoded Avro mapping directly, the same
rules on the same values), kept free of I/O so it can be tested table-driven and reused both by the monthly load and by the recompute after a
month is replaced. Every event carries the full institution snapshot *after* the event (see
``schemas.events.Institution``), so most events simply take the snapshot; the event type decides
what the snapshot cannot say on its own:

=========================  =====================================================================
event                      effect
=========================  =====================================================================
ESTABLISHED                creates, or overwrites the snapshot fields (a second registrar's
                           record of the same USCC merges into the same row); childcare on
CHANGED                    takes the new snapshot (``changed_fields`` are masked text for the
                           audit trail; the typed snapshot already holds the new values)
SCOPE_ADDED_CHILDCARE      snapshot, childcare on
SCOPE_REMOVED_CHILDCARE    snapshot, childcare off
DEREGISTERED / REVOKED     snapshot, status forced to DEREGISTERED / REVOKED
MOVED_OUT                  snapshot, status MOVED_OUT, county = the *from* county
MOVED_IN                   snapshot, status ACTIVE, county = the *to* county
CHILDCARE_CLASS_ADDED      creates from the 教育 snapshot if unknown; otherwise only flags
                           childcare (教育 does not register the legal entity, so its snapshot —
                           a kindergarten's name and scope — must not overwrite the registrar's)
=========================  =====================================================================

A snapshot without a county (unresolved address) never erases a county already known. Every event
adds its registrar to ``registrars``; ESTABLISHED dates keep the earliest as
``first_registration_date``; ``childcare_since`` is the date the institution last became childcare.
Personal data is masked on the way in (the legal representative's ID and phone; IDs or phones typed
into the name, address or scope), whatever the connector did.

Order across loads: ``position`` (topic, partition, offset) is recorded as the last event applied.
Topics are keyed by USCC, so one institution's events share a partition and offsets order them;
:func:`is_behind` tells the loader that an event comes *before* the last one applied (a month
backfilled after a later one), and the loader then re-folds that institution's whole stored
history in order (:func:`sink.rebuild.refold`) instead of folding the event on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from schemas.events import EventType, InstitutionStatus, RegistrationEvent, event_county
from sink.eventjson import masked_ids, masked_text

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "STATE_COLUMNS",
    "InstitutionState",
    "Position",
    "event_county",
    "fold",
    "fold_record",
    "is_behind",
    "record_county",
]

# Keyed by plain values: fold_record looks them up with ``str(event_type)``, whichever path it came from.
_FORCED_STATUS: dict[str, str] = {
    EventType.DEREGISTERED.value: InstitutionStatus.DEREGISTERED.value,
    EventType.REVOKED.value: InstitutionStatus.REVOKED.value,
    EventType.MOVED_OUT.value: InstitutionStatus.MOVED_OUT.value,
    EventType.MOVED_IN.value: InstitutionStatus.ACTIVE.value,
}
_CHILDCARE_ON = frozenset(
    {
        EventType.ESTABLISHED.value,
        EventType.SCOPE_ADDED_CHILDCARE.value,
        EventType.CHILDCARE_CLASS_ADDED.value,
    }
)


class Position(NamedTuple):
    """Where an event was read: Kafka topic, partition and offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class InstitutionState:
    """One ``institutions`` row as a value; enum members are kept as their string values."""

    uscc: str
    name: str
    legal_form: str
    profit_nature: str
    address: str
    county_code: str | None
    county_resolution: str | None
    status: str
    childcare: bool
    childcare_since: date | None
    business_scope: str
    registered_capital: Decimal | None
    capital_currency: str | None
    service_forms: str | None
    capacity: int | None
    legal_rep_name: str | None
    legal_rep_id_masked: str | None
    legal_rep_phone_masked: str | None
    registrars: tuple[str, ...]
    first_registration_date: date | None
    last_event_id: str
    last_event_date: date
    last_event_type: str
    last_topic: str | None = None
    last_partition: int | None = None
    last_offset: int | None = None
    first_load_month: str = ""
    last_load_month: str = ""
    stated_division_code: str | None = None
    """What the registrar stated as the premises' division (contract v2), beside the county resolved."""
    industry_code: str | None = None
    """国民经济行业分类 code from the latest snapshot that carried one (contract v2)."""

    def to_row(self) -> dict[str, Any]:
        """The ``institutions`` row (registrars as a sorted comma list)."""
        row = {name: getattr(self, name) for name in _COLUMNS}
        row["registrars"] = ",".join(self.registrars)
        return row

    def to_tuple(self) -> list[Any]:
        """:meth:`to_row` as values in :data:`STATE_COLUMNS` order (what the load COPYs)."""
        values = list(_GET_COLUMNS(self))
        values[_REGISTRARS] = ",".join(values[_REGISTRARS])
        return values

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | sa.RowMapping) -> InstitutionState:
        """Read a row back (the inverse of :meth:`to_row`)."""
        values = {name: row[name] for name in _COLUMNS}
        values["registrars"] = tuple(r for r in (row["registrars"] or "").split(",") if r)
        return cls(**values)


_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(InstitutionState))
STATE_COLUMNS = _COLUMNS
"""The ``institutions`` columns in :meth:`InstitutionState.to_tuple` order."""
_GET_COLUMNS = attrgetter(*_COLUMNS)
_REGISTRARS = _COLUMNS.index("registrars")


def fold(
    state: InstitutionState | None,
    event: RegistrationEvent,
    *,
    position: Position | None = None,
    load_month: str | None = None,
) -> InstitutionState:
    """The institution after ``event``; ``state`` is ``None`` when the USCC is not yet known."""
    return fold_record(state, event.to_avro(), position=position, load_month=load_month)


def fold_record(
    state: InstitutionState | None,
    record: Mapping[str, Any],
    *,
    position: Position | None = None,
    load_month: str | None = None,
) -> InstitutionState:
    """:func:`fold` over the event's Avro mapping (as the codec decodes it, or ``to_avro()``).

    Why a mapping: the load folds every event of a month, and building the typed model only to read
    it back here was a fifth of the load's Python time (issue 12). :func:`fold` is this function on
    ``event.to_avro()``, so the typed and the mapping paths cannot drift apart. Enum values are
    kept as ``str`` (a StrEnum member is turned into its value).
    """
    kind = str(record["event_type"])  # a StrEnum member (typed path) or its value (decoded)
    merged = _bookkeeping(state, record, kind, load_month)
    stamp = {
        **merged,
        "last_event_id": record["event_id"],
        "last_event_date": record["event_date"],
        "last_event_type": kind,
        "last_topic": None if position is None else position.topic,
        "last_partition": None if position is None else position.partition,
        "last_offset": None if position is None else position.offset,
    }
    if state is not None and kind == EventType.CHILDCARE_CLASS_ADDED:
        since = state.childcare_since if state.childcare else record["event_date"]
        return replace(state, childcare=True, childcare_since=since, **stamp)
    return _apply_snapshot(state, record, kind, stamp)


def is_behind(state: InstitutionState | None, pos: Position) -> bool:
    """Whether an event at ``pos`` precedes the last event folded into ``state`` (same partition)."""
    return (
        state is not None
        and state.last_offset is not None
        and state.last_topic == pos.topic
        and state.last_partition == pos.partition
        and pos.offset <= state.last_offset
    )


def record_county(record: Mapping[str, Any]) -> str | None:
    """:func:`schemas.events.event_county` on the Avro mapping: 迁出 → the old county, 迁入 → the new one."""
    move = record["jurisdiction"]
    if move is not None:
        kind = record["event_type"]
        if kind == EventType.MOVED_OUT and move["from_county_code"]:
            return move["from_county_code"]  # type: ignore[no-any-return]
        if kind == EventType.MOVED_IN and move["to_county_code"]:
            return move["to_county_code"]  # type: ignore[no-any-return]
    return record["institution"]["county_code"]  # type: ignore[no-any-return]


def _apply_snapshot(
    state: InstitutionState | None, record: Mapping[str, Any], kind: str, stamp: dict[str, Any]
) -> InstitutionState:
    snap = record["institution"]
    status = _FORCED_STATUS.get(kind, snap["status"])
    county, resolution = _county(state, record)
    if kind in _CHILDCARE_ON:
        childcare = True
    elif kind == EventType.SCOPE_REMOVED_CHILDCARE:
        childcare = False
    else:  # only childcare registrations enter the pipeline, so an unknown one counts as childcare
        childcare = True if state is None else state.childcare
    if not childcare:
        since = None
    elif state is not None and state.childcare and state.childcare_since is not None:
        since = state.childcare_since
    else:
        since = record["event_date"]
    rep = snap["legal_representative"]
    if rep is not None:
        id_masked, phone_masked = masked_ids(rep["id_number_masked"], rep["phone_masked"])
    forms = snap["service_forms"]
    return InstitutionState(
        uscc=snap["uscc"],
        name=masked_text(snap["name"]),
        legal_form=str(snap["legal_form"]),
        profit_nature=str(snap["profit_nature"]),
        address=masked_text(snap["address"]),
        county_code=county,
        county_resolution=resolution,
        status=str(status),
        childcare=childcare,
        childcare_since=since,
        business_scope=masked_text(snap["business_scope"]),
        registered_capital=snap["registered_capital"],
        capital_currency=snap["registered_capital_currency"],
        # distinct, in the event's order: repeats must not overflow the column (four forms fit in 64)
        service_forms=None if not forms else ",".join(dict.fromkeys(map(str, forms))),
        capacity=snap["capacity"],
        legal_rep_name=None if rep is None else rep["name"],
        legal_rep_id_masked=None if rep is None else id_masked,
        legal_rep_phone_masked=None if rep is None else phone_masked,
        stated_division_code=snap["stated_division_code"],
        industry_code=snap["industry_code"],
        **stamp,
    )


def _county(state: InstitutionState | None, record: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The county the institution sits in after the event, and how it was resolved."""
    snap = record["institution"]
    method = str(snap["county_resolution"]["method"])
    stated = record_county(record)
    if stated:
        return stated, method if stated == snap["county_code"] else "STATED"
    if state is not None and state.county_code:
        return state.county_code, state.county_resolution
    return None, method


def _bookkeeping(
    state: InstitutionState | None, record: Mapping[str, Any], kind: str, load_month: str | None
) -> dict[str, Any]:
    """What every event adds, whatever its type: registrars seen, earliest 设立 date, load-month span."""
    registrar = str(record["registrar"])
    if state is None:
        registrars: tuple[str, ...] = (registrar,)
        first, first_month, last_month = None, load_month or "", load_month or ""
    else:
        registrars = state.registrars
        if registrar not in registrars:
            registrars = tuple(sorted((*registrars, registrar)))
        first, first_month, last_month = (
            state.first_registration_date,
            state.first_load_month,
            state.last_load_month,
        )
        if load_month:
            first_month = min(first_month, load_month) if first_month else load_month
            last_month = max(last_month, load_month)
    if kind == EventType.ESTABLISHED and (first is None or record["event_date"] < first):
        first = record["event_date"]
    return {
        "registrars": registrars,
        "first_registration_date": first,
        "first_load_month": first_month,
        "last_load_month": last_month,
    }
