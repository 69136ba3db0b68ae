"""The columns of a county push package, and how one stored event becomes one row.

Written for a county health bureau clerk opening the file in Excel: Chinese headers and labels
(登记机关 rather than ``SHICHANG``), dates as dates, the USCC as text. Rows come from the stored event
document (the institution as registered *at that event*), so a package says what was pushed, not
what the roster says today.

Personal data: the legal representative's **name is kept** — the bureau checks that whoever files
(备案书 and 承诺书 are signed by the legal representative) is the registered one, and chases
unfiled institutions by contacting them; the name is also public registration information
(企业信用信息公示). The **ID number and phone are masked** again here (idempotent), and free text that
might embed an ID or phone (address, changed values) goes through ``mask_text``.

Formula injection: a text cell starting with ``= + - @`` (or a tab/CR) is prefixed with ``'`` so
Excel shows it instead of evaluating it (openpyxl would even write ``=…`` as a formula).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from schemas.events import EventType, InstitutionStatus, LegalForm, ProfitNature, Registrar, ServiceForm
from schemas.masking import mask_phone, mask_resident_id, mask_text

__all__ = ["COLUMNS", "Column", "cell_text", "event_row"]

Cell = str | int | Decimal | date | None

_FIELD_ZH = {
    "name": "名称",
    "address": "住所",
    "legal_representative.name": "法定代表人",
    "business_scope": "业务范围",
    "registered_capital": "注册资本(开办资金)",
}
_TZ = ZoneInfo("Asia/Shanghai")


class Column(NamedTuple):
    """A package column: Chinese header, Excel width, and how to read it from a stored event."""

    header: str
    width: int
    value: Callable[[Mapping[str, Any]], Cell]


def _label(enum: Any, value: str | None) -> str | None:
    return None if value is None else enum(value).label_zh


def _inst(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    return doc["institution"]


def _rep(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    return _inst(doc).get("legal_representative") or {}


def _capital(doc: Mapping[str, Any]) -> Decimal | None:
    raw = _inst(doc).get("registered_capital")
    return None if raw is None else Decimal(raw).normalize()


def _forms(doc: Mapping[str, Any]) -> str | None:
    forms = _inst(doc).get("service_forms")
    return "、".join(ServiceForm(f).label_zh for f in forms) if forms else None


def _changes(doc: Mapping[str, Any]) -> str | None:
    items = [
        f"{_FIELD_ZH.get(c['field'], c['field'])}：{mask_text(c.get('old')) or '（空）'}→{mask_text(c.get('new')) or '（空）'}"
        for c in doc.get("changed_fields") or ()
    ]
    return "；".join(items) or None


def _move(doc: Mapping[str, Any], key: str) -> str | None:
    move = doc.get("jurisdiction")
    return None if move is None else move.get(key)


COLUMNS: tuple[Column, ...] = (
    Column("统一社会信用代码", 22, lambda d: _inst(d)["uscc"]),
    Column("机构名称", 36, lambda d: _inst(d)["name"]),
    Column("事件类型", 18, lambda d: _label(EventType, d["event_type"])),
    Column("登记(核准)日期", 14, lambda d: date.fromisoformat(d["event_date"])),
    Column("推送时间", 20, lambda d: d["_pushed_at"]),
    Column("逾期推送", 10, lambda d: "是" if d["_late"] else "否"),
    Column("登记机关", 16, lambda d: _label(Registrar, d["registrar"])),
    Column("法人类型", 24, lambda d: _label(LegalForm, _inst(d)["legal_form"])),
    Column("营利性质", 10, lambda d: _label(ProfitNature, _inst(d)["profit_nature"])),
    Column("住所(经营场所)", 44, lambda d: mask_text(_inst(d)["address"])),
    Column("县级行政区划代码", 14, lambda d: d["_county_code"]),
    Column("登记状态", 10, lambda d: _label(InstitutionStatus, _inst(d)["status"])),
    Column("业务(经营)范围", 50, lambda d: mask_text(_inst(d)["business_scope"])),
    Column("注册资本(开办资金,万元)", 14, _capital),
    Column("币种", 6, lambda d: _inst(d).get("registered_capital_currency")),
    Column("服务形式", 20, _forms),
    Column("托位数", 8, lambda d: _inst(d).get("capacity")),
    Column("法定代表人", 12, lambda d: _rep(d).get("name")),
    Column(
        "法定代表人证件号码(脱敏)", 22, lambda d: mask_resident_id(_rep(d).get("id_number_masked")) or None
    ),
    Column("联系电话(脱敏)", 16, lambda d: mask_phone(_rep(d).get("phone_masked")) or None),
    Column("迁出地区划代码", 14, lambda d: _move(d, "from_county_code")),
    Column("迁入地区划代码", 14, lambda d: _move(d, "to_county_code")),
    Column("变更事项", 40, _changes),
    Column("来源记录", 28, lambda d: f"{d['lineage']['source_system']}/{d['lineage']['source_record_id']}"),
    Column("事件编号", 38, lambda d: d["event_id"]),
)


def event_row(
    doc: Mapping[str, Any], *, pushed_at: datetime | None, late: bool, county_code: str | None
) -> list[Cell]:
    """One package row from a stored event document and its load columns."""
    shown = None
    if pushed_at is not None:
        aware = pushed_at if pushed_at.tzinfo is not None else pushed_at.replace(tzinfo=UTC)
        shown = aware.astimezone(_TZ).strftime("%Y-%m-%d %H:%M:%S")
    data = {**doc, "_pushed_at": shown, "_late": late, "_county_code": county_code}
    return [_defuse(col.value(data)) for col in COLUMNS]


def cell_text(value: Cell) -> str:
    """A cell as CSV text: dates ISO, decimals plain, empty for ``None``."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _defuse(value: Cell) -> Cell:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
