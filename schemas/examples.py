"""The canonical registration event: one fixed, fully populated example of the contract.

The codec's golden-bytes test pins its encoding, the codec benchmark times it, and documentation can
show it; keeping it here gives all of them the same event.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
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

__all__ = ["canonical_event"]


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
