"""The canonical registration event: one fixed, fully populated example of the contract.

The codec's golden-bytes test pins its encoding, the codec benchmark times it, and documentation can
show it; keeping it here gives all of them the same event. :func:`with_value` and :func:`at_limits`
build the edge cases of the string bounds (:mod:`schemas.limits`) that the gate and the store tests
share.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    LegalRepresentative,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    RuleViolation,
    ServiceForm,
    Severity,
)

__all__ = ["at_limits", "canonical_event", "with_value"]


def canonical_event() -> RegistrationEvent:
    """A fixed, fully populated event: every optional field set, a change list and a warning."""
    return RegistrationEvent.build(
        event_type=EventType.SCOPE_ADDED_CHILDCARE,
        registrar=Registrar.SHICHANG,
        event_date=date(2025, 3, 28),
        extracted_at=datetime(2025, 3, 31, 16, 5, 7, 123000, tzinfo=UTC),
        institution=Institution(
            uscc="91350100M000100Y43",
            name="福州市鼓楼区小橡树托育有限公司",
            legal_form=LegalForm.ENTERPRISE,
            profit_nature=ProfitNature.FOR_PROFIT,
            address="福建省福州市鼓楼区五四路1号",
            business_scope="托育服务；3岁以下婴幼儿照护服务",
            status=InstitutionStatus.ACTIVE,
            county_code="350102",
            county_resolution=CountyResolution(CountyResolutionMethod.ADDRESS, 0.875),
            legal_representative=LegalRepresentative("李四", "350102********0011", True, "139****0000"),
            registered_capital=Decimal("100.25"),
            service_forms=(ServiceForm.FULL_DAY, ServiceForm.TEMPORARY),
            capacity=45,
        ),
        lineage=Lineage("shichang-files", "SC-20250328-0001", "7", "connectors.shichang@0.1.0", "2025-03-31"),
        changed_fields=[FieldChange("business_scope", "企业管理咨询", "托育服务；3岁以下婴幼儿照护服务")],
    ).with_warnings([RuleViolation("COUNTY_LOW_CONFIDENCE", Severity.WARN, "区划置信度低", "low confidence")])


def with_value(event: RegistrationEvent, path: str, value: str) -> RegistrationEvent:
    """A copy of ``event`` with the string at ``path`` (a :data:`schemas.limits.STRING_LIMITS` key) set.

    Array paths (``changed_fields[]...``) set the first item, adding one when the array is empty;
    optional records (legal representative, jurisdiction) are created when absent.
    """
    head, _, leaf = path.rpartition(".")
    new: dict[str, Any] = {leaf: value}
    inst = event.institution
    if head == "":
        return replace(event, **new)
    if head == "institution":
        return replace(event, institution=replace(inst, **new))
    if head == "institution.legal_representative":
        rep = inst.legal_representative or LegalRepresentative("张三")
        return replace(event, institution=replace(inst, legal_representative=replace(rep, **new)))
    if head == "jurisdiction":
        return replace(event, jurisdiction=replace(event.jurisdiction or JurisdictionMove(), **new))
    if head == "lineage":
        return replace(event, lineage=replace(event.lineage, **new))
    if head == "changed_fields[]":
        changes = event.changed_fields or (FieldChange("name"),)
        return replace(event, changed_fields=(replace(changes[0], **new), *changes[1:]))
    if head == "quality_warnings[]":
        warnings = event.quality_warnings or (RuleViolation("LATE_PUSH", Severity.WARN, "迟", "late"),)
        return replace(event, quality_warnings=(replace(warnings[0], **new), *warnings[1:]))
    raise KeyError(f"no string field at {path!r}")


def at_limits(event: RegistrationEvent | None = None) -> RegistrationEvent:
    """``event`` (default: the canonical one) with every bounded string exactly at its bound.

    Each value is its original text padded (with digits, so codes stay digit strings) or cut to the
    bound; a store that can hold this event holds any event the gate lets through.
    """
    from schemas.limits import STRING_LIMITS

    event = event or canonical_event()
    for path, bound in STRING_LIMITS.items():
        event = with_value(event, path, _fill(path, bound))
    return event


def _fill(path: str, bound: int) -> str:
    if path.endswith("code") or path.endswith("uscc"):
        return ("9" * bound)[:bound]
    return ("托育" * bound)[:bound]
