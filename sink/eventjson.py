"""Events as JSON documents for the history table, with personal data masked at rest.

The history keeps each event whole so an auditor can trace a roster value to its record, and so the
roster can be recomputed from history (see :mod:`sink.rebuild`). The document is the Avro record dict
(``RegistrationEvent.to_avro``) with the few non-JSON values made text: dates and timestamps as ISO
8601, decimals as strings (exact). Reading it back gives an equal event.

Masking: connectors already put masked values in ``*_masked`` fields, but the store is where data
stays for years, so it masks again (the maskers are idempotent): the legal representative's ID and
phone, and any ID or phone embedded in free text (name, address, scope) or changed-field values. A connector bug can thus never leave a
full ID in the filing store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from schemas.events import LegalRepresentative, RegistrationEvent
from schemas.masking import mask_phone, mask_resident_id, mask_text

__all__ = [
    "FREE_TEXT",
    "event_from_json",
    "event_to_json",
    "masked_ids",
    "masked_rep",
    "masked_text",
    "record_to_json",
]

FREE_TEXT = ("name", "address", "business_scope")
"""Institution fields typed by a clerk, where an ID or phone may be embedded; masked at rest."""


_MASK_CACHE = 4096
"""Entries per memo below: the fold and the history document mask the same values of each event one
after the other, and scope wording repeats across institutions; bounded, so memory stays flat."""


@lru_cache(maxsize=_MASK_CACHE)
def masked_text(text: str | None) -> str:
    """:func:`schemas.masking.mask_text`, memoised (a pure function of the text)."""
    return mask_text(text)


@lru_cache(maxsize=_MASK_CACHE)
def masked_ids(id_number: str | None, phone: str | None) -> tuple[str | None, str | None]:
    """A legal representative's ID and phone masked (idempotent on masked values; memoised)."""
    return mask_resident_id(id_number) or None, mask_phone(phone) or None


def masked_rep(rep: LegalRepresentative | None) -> LegalRepresentative | None:
    """The legal representative with ID and phone masked (see :func:`masked_ids`)."""
    if rep is None:
        return None
    id_masked, phone_masked = masked_ids(rep.id_number_masked, rep.phone_masked)
    if id_masked == rep.id_number_masked and phone_masked == rep.phone_masked:
        return rep
    return LegalRepresentative(rep.name, id_masked, rep.id_valid, phone_masked)


def event_to_json(event: RegistrationEvent) -> dict[str, Any]:
    """A JSON-safe document of the event, personal data masked."""
    return record_to_json(event.to_avro())


def record_to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`event_to_json` of the event's Avro mapping (decoded, or ``to_avro()``); ``record`` is not changed.

    The load builds the document straight from the decoded mapping: the typed model in between
    cost a fifth of its Python time (issue 12), and :func:`event_to_json` goes through here too.
    """
    doc = dict(record)
    doc["event_date"] = record["event_date"].isoformat()
    doc["extracted_at"] = record["extracted_at"].isoformat()
    inst = doc["institution"] = dict(record["institution"])
    capital = inst["registered_capital"]
    inst["registered_capital"] = None if capital is None else str(capital)
    for key in FREE_TEXT:
        inst[key] = masked_text(inst[key])
    rep = inst["legal_representative"]
    if rep is not None:
        id_masked, phone_masked = masked_ids(rep["id_number_masked"], rep["phone_masked"])
        inst["legal_representative"] = {**rep, "id_number_masked": id_masked, "phone_masked": phone_masked}
    doc["changed_fields"] = [
        {**change, "old": _mask_value(change["old"]), "new": _mask_value(change["new"])}
        for change in record["changed_fields"]
    ]
    return doc


def event_from_json(doc: dict[str, Any]) -> RegistrationEvent:
    """Rebuild the event from its stored document (the inverse of :func:`event_to_json`)."""
    data = dict(doc)
    data["event_date"] = date.fromisoformat(doc["event_date"])
    data["extracted_at"] = datetime.fromisoformat(doc["extracted_at"])
    inst = dict(doc["institution"])
    capital = inst.get("registered_capital")
    inst["registered_capital"] = None if capital is None else Decimal(capital)
    data["institution"] = inst
    return RegistrationEvent.from_avro(data)


def _mask_value(value: str | None) -> str | None:
    return None if value is None else masked_text(value)
