"""String bounds of the ``RegistrationEvent`` contract, declared once.

Why here: what the gate lets through, the filing store must hold. An over-long value that passed the
gate used to reach ``registrations.valid`` and fail the monthly load on a ``varchar(32)`` every time —
one event blocked a whole month. So each string field of the event has one maximum length, in
characters (Unicode code points, as PostgreSQL's ``varchar(n)`` counts them), and three parties read
it from this table:

* the gate rejects an event with any longer value (rule ``FIELD_TOO_LONG``, :mod:`quality.record_checks`);
* the filing store declares its columns with these lengths (:mod:`sink.models`), and a test checks
  that every bounded column equals its limit;
* the contract documentation lists them (docs/consumers.md, checked by a test against this table).

Paths are dotted field paths of the event; ``[]`` marks the items of an array. A test checks that the
table names exactly the string fields of the newest contract version, so a new string field cannot be
added without a bound. Avro itself has no length constraint, so the bounds are ours, not the schema's:
change one only together with the store (a migration) and the docs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from schemas.events import RegistrationEvent

__all__ = ["STRING_LIMITS", "TooLong", "limit", "too_long"]

STRING_LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "event_id": 36,  # a UUID in text form
        "institution.uscc": 18,  # GB 32100
        "institution.name": 200,
        "institution.legal_representative.name": 100,
        "institution.legal_representative.id_number_masked": 32,  # 18-character IDs, passports
        "institution.legal_representative.phone_masked": 32,  # +86 and separators included
        "institution.address": 500,
        "institution.county_code": 6,  # GB/T 2260 county level
        "institution.business_scope": 4000,
        "institution.registered_capital_currency": 3,  # ISO 4217
        "institution.stated_division_code": 12,  # up to a 12-digit township code, as stated
        "institution.industry_code": 8,  # GB/T 4754, e.g. 8020 or P8020
        "changed_fields[].field": 64,
        "changed_fields[].old": 4000,  # a changed value may be a whole business scope
        "changed_fields[].new": 4000,
        "jurisdiction.from_county_code": 6,
        "jurisdiction.to_county_code": 6,
        "lineage.source_system": 64,
        "lineage.source_record_id": 128,
        "lineage.source_version": 128,
        "lineage.cursor_value": 256,
        "lineage.extracted_by": 128,
        "quality_warnings[].rule_id": 64,
        "quality_warnings[].field": 128,
        "quality_warnings[].message_zh": 2000,
        "quality_warnings[].message_en": 2000,
    }
)
"""Event field path → maximum length in characters."""


def limit(path: str) -> int:
    """The bound of one field path; an unknown path is a programming error (KeyError)."""
    return STRING_LIMITS[path]


class TooLong(NamedTuple):
    """One value over its bound: ``field`` is the concrete path (array items indexed, e.g. ``changed_fields[2].new``)."""

    field: str
    length: int
    limit: int


_L = STRING_LIMITS


def too_long(event: RegistrationEvent) -> list[TooLong]:
    """Every string value of ``event`` longer than its bound, in field order (empty: all fit).

    Plain attribute reads, no reflection: the gate runs this on every event.
    """
    return list(_over(event))


def _check(path: str, value: str | None, bound: int) -> Iterator[TooLong]:
    if value is not None and len(value) > bound:
        yield TooLong(path, len(value), bound)


def _over(event: RegistrationEvent) -> Iterator[TooLong]:
    yield from _check("event_id", event.event_id, _L["event_id"])
    inst = event.institution
    yield from _check("institution.uscc", inst.uscc, _L["institution.uscc"])
    yield from _check("institution.name", inst.name, _L["institution.name"])
    rep = inst.legal_representative
    if rep is not None:
        for key, value in (
            ("name", rep.name),
            ("id_number_masked", rep.id_number_masked),
            ("phone_masked", rep.phone_masked),
        ):
            path = f"institution.legal_representative.{key}"
            yield from _check(path, value, _L[path])
    for key, value in (
        ("address", inst.address),
        ("county_code", inst.county_code),
        ("business_scope", inst.business_scope),
        ("registered_capital_currency", inst.registered_capital_currency),
        ("stated_division_code", inst.stated_division_code),
        ("industry_code", inst.industry_code),
    ):
        path = f"institution.{key}"
        yield from _check(path, value, _L[path])
    for index, change in enumerate(event.changed_fields):
        for key, value in (("field", change.field), ("old", change.old), ("new", change.new)):
            yield from _check(f"changed_fields[{index}].{key}", value, _L[f"changed_fields[].{key}"])
    move = event.jurisdiction
    if move is not None:
        yield from _check(
            "jurisdiction.from_county_code", move.from_county_code, _L["jurisdiction.from_county_code"]
        )
        yield from _check(
            "jurisdiction.to_county_code", move.to_county_code, _L["jurisdiction.to_county_code"]
        )
    lin = event.lineage
    for key, value in (
        ("source_system", lin.source_system),
        ("source_record_id", lin.source_record_id),
        ("source_version", lin.source_version),
        ("cursor_value", lin.cursor_value),
        ("extracted_by", lin.extracted_by),
    ):
        path = f"lineage.{key}"
        yield from _check(path, value, _L[path])
    for index, warning in enumerate(event.quality_warnings):
        for key, value in (
            ("rule_id", warning.rule_id),
            ("field", warning.field),
            ("message_zh", warning.message_zh),
            ("message_en", warning.message_en),
        ):
            yield from _check(f"quality_warnings[{index}].{key}", value, _L[f"quality_warnings[].{key}"])
