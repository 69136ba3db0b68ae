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

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from schemas.events import LegalRepresentative, RegistrationEvent
from schemas.masking import mask_phone, mask_resident_id, mask_text

__all__ = ["FREE_TEXT", "event_from_json", "event_to_json", "masked_rep", "masked_text"]

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
def masked_rep(rep: LegalRepresentative | None) -> LegalRepresentative | None:
    """The legal representative with ID and phone masked (idempotent on masked values; memoised)."""
    if rep is None:
        return None
    id_masked = mask_resident_id(rep.id_number_masked) or None
    phone_masked = mask_phone(rep.phone_masked) or None
    if id_masked == rep.id_number_masked and phone_masked == rep.phone_masked:
        return rep
    return LegalRepresentative(rep.name, id_masked, rep.id_valid, phone_masked)


def event_to_json(event: RegistrationEvent) -> dict[str, Any]:
    """A JSON-safe document of the event, personal data masked."""
    doc = event.to_avro()
    doc["event_date"] = event.event_date.isoformat()
    doc["extracted_at"] = event.extracted_at.isoformat()
    inst = doc["institution"]
    capital = inst["registered_capital"]
    inst["registered_capital"] = None if capital is None else str(capital)
    for key in FREE_TEXT:
        inst[key] = masked_text(inst[key])
    rep = masked_rep(event.institution.legal_representative)
    inst["legal_representative"] = None if rep is None else rep.to_avro()
    for change in doc["changed_fields"]:
        change["old"] = _mask_value(change["old"])
        change["new"] = _mask_value(change["new"])
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
