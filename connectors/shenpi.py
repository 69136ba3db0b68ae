"""行政审批 connector: every approved registration version on the 行政审批服务局 platform.

The platform appends one row per approved version to ``approval_registration`` (glossary in
:mod:`simulators.shenpi_db`) and numbers rows with an auto-increment ``change_seq`` in approval
order, so ``change_seq`` is the cursor: unique, hence no ties in practice, yet read the same way as
every connector (``>= mark`` under :class:`HighWatermark`) so the row at the committed mark is
re-read but never re-emitted. As cursor text it is zero-padded to 12 digits, which sorts like the
number. The trade-off, stated: a sequence is only a safe cursor while the platform commits in
sequence order; the vendor's single approval workflow does, and a multi-writer source would need a
timestamp cursor with a look-back instead.

Mapping decisions: ``biz_type`` gives the event type (SL 设立, BG 变更, ZX 注销, DX 吊销, QC 迁出,
QR 迁入); ``status_code`` the status (05 迁入 is active in its new county); ``entity_type`` the legal
form and profit nature (enterprise 91 / individual 92 are for-profit, social_org 52 non-profit);
``scope_json`` items are joined with ``；``; capital comes in 元 and leaves in 万元.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa

from connectors.base import (
    ConnectorSpec,
    ExtractContext,
    HighWatermark,
    UnusableRecord,
    event_type_from,
    legal_representative,
    parse_date,
)
from connectors.sql import SqlConnector, json_column
from schemas.events import (
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    ServiceForm,
)
from schemas.masking import mask_text

SOURCE = "shenpi"
EXTRACTED_BY = "connectors.shenpi@0.1.0"
CURSOR_DIGITS = 12
UPDATE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # update_time: Beijing time text, sorts like time

BIZ_TYPE = {
    "SL": EventType.ESTABLISHED,
    "BG": EventType.CHANGED,
    "ZX": EventType.DEREGISTERED,
    "DX": EventType.REVOKED,
    "QC": EventType.MOVED_OUT,
    "QR": EventType.MOVED_IN,
}
STATUS = {
    "01": InstitutionStatus.ACTIVE,
    "02": InstitutionStatus.DEREGISTERED,
    "03": InstitutionStatus.REVOKED,
    "04": InstitutionStatus.MOVED_OUT,
    "05": InstitutionStatus.ACTIVE,
}
ENTITY_TYPE = {
    "enterprise": (LegalForm.ENTERPRISE, ProfitNature.FOR_PROFIT),
    "individual": (LegalForm.INDIVIDUAL_BUSINESS, ProfitNature.FOR_PROFIT),
    "social_org": (LegalForm.PRIVATE_NON_ENTERPRISE, ProfitNature.NON_PROFIT),
}
MODES = {
    "01": ServiceForm.FULL_DAY,
    "02": ServiceForm.HALF_DAY,
    "03": ServiceForm.HOURLY,
    "04": ServiceForm.TEMPORARY,
}
ITEM_FIELD = {
    "legal_person": "legal_representative.name",
    "entity_name": "name",
    "reg_address": "address",
    "business_scope": "business_scope",
    "reg_capital": "registered_capital",
}
MOVES = (EventType.MOVED_OUT, EventType.MOVED_IN)

# JSON columns are read untyped: PostgreSQL's driver hands back lists, SQLite text. Parsing them
# here keeps one corrupt value a per-row DLQ finding instead of failing the whole page's fetch.
COLUMNS = (  # noqa: SIM905 - the columns read, at one glance
    "change_seq entity_id version_no biz_type status_code credit_code entity_name entity_type legal_person"
    " lp_cert_no lp_mobile reg_address address_area_code scope_json reg_capital_yuan service_modes"
    " nursery_places established_date approve_date change_items from_area_code to_area_code update_time"
).split()
TYPES: dict[str, Any] = {
    "change_seq": sa.BigInteger,
    "version_no": sa.Integer,
    "nursery_places": sa.Integer,
    "reg_capital_yuan": sa.Numeric(18, 2),
    "scope_json": None,
    "change_items": None,
}
REGISTRATION = sa.table("approval_registration", *(sa.column(n, TYPES.get(n, sa.String)) for n in COLUMNS))


class ShenpiConnector(SqlConnector):
    """Reads the 行政审批 platform's registration versions incrementally (SQLite or PostgreSQL URL)."""

    spec = ConnectorSpec(
        name=SOURCE,
        registrar=Registrar.SHENPI,
        source_system="shenpi-approval-db",
        key="entity_id,version_no",
        cursor_field="change_seq",
        description="行政审批服务局审批平台：登记版本表 approval_registration，每个核准版本一行",
        surfaced_field="update_time",
    )

    table = REGISTRATION
    order_by = ("change_seq", "entity_id", "version_no")
    personal: ClassVar[Mapping[str, str]] = {"lp_cert_no": "id", "lp_mobile": "phone"}

    def after_mark(self, mark: HighWatermark) -> sa.ColumnElement[bool]:
        """``change_seq >= mark`` as a number."""
        return REGISTRATION.c.change_seq >= int(mark.value or 0)

    def until(self, ctx: ExtractContext) -> sa.ColumnElement[bool]:
        """Approvals are serial, so ``update_time`` (text of one width) rises with ``change_seq``."""
        return REGISTRATION.c.update_time <= ctx.local_end(UPDATE_TIME_FORMAT)

    def position(self, row: sa.Row[Any]) -> tuple[str, str]:
        """(cursor value, tie key); the cursor zero-padded so text order is numeric."""
        return f"{row.change_seq:0{CURSOR_DIGITS}d}", f"{row.entity_id}/{row.version_no}"

    def record_id(self, row: sa.Row[Any]) -> tuple[str, str]:
        """The entity and its version."""
        return row.entity_id, f"{row.entity_id} v{row.version_no}"

    def convert(
        self, row: sa.Row[Any], cursor: str, ctx: ExtractContext, page: Any
    ) -> RegistrationEvent | None:
        """The version's event; None when neither scope nor name is childcare."""
        key = f"{row.entity_id} v{row.version_no}"
        scope = "；".join(_string_list(row.scope_json, "scope_json", key))
        if not self.is_childcare(scope, row.entity_name):
            return None
        return self._event(row, scope, key, cursor, ctx)

    def _event(
        self, row: sa.Row[Any], scope: str, key: str, cursor: str, ctx: ExtractContext
    ) -> RegistrationEvent:
        event_type = event_type_from(row.biz_type or "", BIZ_TYPE, SOURCE, key)
        status = STATUS.get(row.status_code or "")
        if status is None:
            raise UnusableRecord(f"{SOURCE}: unknown status_code {row.status_code!r} on record {key}")
        event_date = parse_date(row.approve_date) or parse_date(row.established_date)
        if event_date is None:
            raise UnusableRecord(f"{SOURCE}: record {key} has neither approve_date nor established_date")
        form, nature = ENTITY_TYPE.get(row.entity_type or "", (LegalForm.OTHER, ProfitNature.UNKNOWN))
        county, resolution = self.resolve_county(row.reg_address, row.address_area_code)
        capital: Decimal | None = row.reg_capital_yuan
        institution = Institution(
            uscc=(row.credit_code or "").strip(),
            name=(row.entity_name or "").strip(),
            legal_form=form,
            profit_nature=nature,
            address=(row.reg_address or "").strip(),
            business_scope=scope,
            status=status,
            county_code=county,
            county_resolution=resolution,
            legal_representative=legal_representative(
                row.legal_person, row.lp_cert_no, row.lp_mobile, ctx.extracted_at.date()
            ),
            registered_capital=None if capital is None else capital.scaleb(-4),  # 元 → 万元, exactly
            service_forms=_modes(row.service_modes, key),
            capacity=row.nursery_places,
        )
        return RegistrationEvent.build(
            event_type=event_type,
            registrar=Registrar.SHENPI,
            event_date=event_date,
            extracted_at=ctx.extracted_at,
            institution=institution,
            lineage=Lineage(
                self.spec.source_system, row.entity_id, str(row.version_no), EXTRACTED_BY, cursor
            ),
            changed_fields=_changes(row.change_items, key) if event_type is EventType.CHANGED else (),
            jurisdiction=JurisdictionMove(row.from_area_code, row.to_area_code)
            if event_type in MOVES
            else None,
        )


def _string_list(value: Any, column: str, key: str) -> list[str]:
    """A JSON list of text items (``None`` → empty); anything else is an error naming the column."""
    items = json_column(value, column, key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise UnusableRecord(f"{SOURCE}: {column} of record {key} is not a list of text items: {items!r:.80}")
    return [item.strip() for item in items if item.strip()]


def _changes(value: Any, key: str) -> tuple[FieldChange, ...]:
    """change_items → field changes, values masked (an ID or phone may be the changed value)."""
    items = json_column(value, "change_items", key) or []
    if not isinstance(items, list) or not all(_is_change(item) for item in items):
        raise UnusableRecord(
            f"{SOURCE}: change_items of record {key} is not a list of {{item, before, after}} texts: {items!r:.80}"
        )
    return tuple(
        FieldChange(
            ITEM_FIELD.get(item["item"], item["item"]),
            mask_text(item.get("before")) or None,
            mask_text(item.get("after")) or None,
        )
        for item in items
    )


def _is_change(item: Any) -> bool:
    """``{"item": text, "before": text|null, "after": text|null}``: anything else cannot be a FieldChange."""
    if not isinstance(item, dict) or not isinstance(item.get("item"), str):
        return False
    return all(isinstance(item.get(side), str | None) for side in ("before", "after"))


def _modes(text: str | None, key: str) -> tuple[ServiceForm, ...] | None:
    codes = [code.strip() for code in (text or "").split(",") if code.strip()]
    unknown = [code for code in codes if code not in MODES]
    if unknown:
        raise UnusableRecord(f"{SOURCE}: unknown service_modes {unknown} on record {key}")
    return tuple(MODES[code] for code in codes) or None
