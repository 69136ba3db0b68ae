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

Code columns (USCC, division codes; ``Column.code``) stay text. A spreadsheet opening a CSV guesses
types: the all-digit USCC 914403001922038216 becomes the float 9.14403E+17 (digits after the 15th
lost) and a code with a leading zero loses it. So:

* XLSX: a string cell with number format ``@`` (Text), so it also stays text when a clerk edits it.
* CSV: ``="914403001922038216"``, the form Excel (and WPS) evaluate to the text itself. Checked with
  headless LibreOffice 7.4 (``tests/unit/test_spreadsheet_open.py``): with "evaluate formulas" on
  (the default of a conversion without filter options) the cell is the exact text; with the Text
  Import dialog's default (``EvaluateFormulas`` false in its registry) it shows ``="…"`` literally —
  still text, every digit kept, never a number; ticking "Evaluate formulas" (remembered) or opening the
  XLSX gives the bare code. Bare digits, by contrast, came back as a float there too. Rejected: an
  apostrophe prefix (Calc keeps it as a visible character), a tab prefix (stays inside the value and
  breaks lookups), a second "machine" CSV (one more file per package for the bureau to tell apart).
* Only a *plain* code (``[0-9A-Za-z]+``) is wrapped, so nothing a source sends can reach a formula:
  anything else in a code column goes through the injection defence above like any text. Machine
  readers strip the wrapper with :func:`unwrap_csv_text`; ``manifest.json`` names the wrapped columns
  (``csv_text_columns``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from openpyxl.cell import WriteOnlyCell

from schemas.events import EventType, InstitutionStatus, LegalForm, ProfitNature, Registrar, ServiceForm
from schemas.masking import mask_phone, mask_resident_id, mask_text
from schemas.month import DEFAULT_TIMEZONE

__all__ = [
    "CODE_COLUMNS",
    "COLUMNS",
    "CSV_TEXT_COLUMNS",
    "Column",
    "cell_text",
    "csv_row",
    "event_row",
    "unwrap_csv_text",
    "xlsx_row",
]

Cell = str | int | Decimal | date | None

_FIELD_ZH = {
    "name": "名称",
    "address": "住所",
    "legal_representative.name": "法定代表人",
    "business_scope": "业务范围",
    "registered_capital": "注册资本(开办资金)",
}
_TZ = ZoneInfo(DEFAULT_TIMEZONE)


class Column(NamedTuple):
    """A package column: Chinese header, Excel width, how to read it from a stored event.

    ``code`` marks an identifier (USCC, division code) that must stay text in the CSV and the XLSX.
    """

    header: str
    width: int
    value: Callable[[Mapping[str, Any]], Cell]
    code: bool = False


def _label(enum: Any, value: str | None) -> str | None:
    return None if value is None else enum(value).label_zh


def _inst(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    inst: Mapping[str, Any] = doc["institution"]
    return inst


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
    Column("统一社会信用代码", 22, lambda d: _inst(d)["uscc"], code=True),
    Column("机构名称", 36, lambda d: _inst(d)["name"]),
    Column("事件类型", 18, lambda d: _label(EventType, d["event_type"])),
    Column("登记(核准)日期", 14, lambda d: date.fromisoformat(d["event_date"])),
    Column("推送时间", 20, lambda d: d["_pushed_at"]),
    Column("逾期推送", 10, lambda d: "是" if d["_late"] else "否"),
    Column("登记机关", 16, lambda d: _label(Registrar, d["registrar"])),
    Column("法人类型", 24, lambda d: _label(LegalForm, _inst(d)["legal_form"])),
    Column("营利性质", 10, lambda d: _label(ProfitNature, _inst(d)["profit_nature"])),
    Column("住所(经营场所)", 44, lambda d: mask_text(_inst(d)["address"])),
    Column("县级行政区划代码", 14, lambda d: d["_county_code"], code=True),
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
    Column("迁出地区划代码", 14, lambda d: _move(d, "from_county_code"), code=True),
    Column("迁入地区划代码", 14, lambda d: _move(d, "to_county_code"), code=True),
    Column("变更事项", 40, _changes),
    Column("来源记录", 28, lambda d: f"{d['lineage']['source_system']}/{d['lineage']['source_record_id']}"),
    Column("事件编号", 38, lambda d: d["event_id"]),
)


CODE_COLUMNS: tuple[str, ...] = tuple(c.header for c in COLUMNS if c.code)
"""Headers of the columns written as text (``="…"`` in the CSV, ``@`` cells in the XLSX)."""
CSV_TEXT_COLUMNS: dict[str, Any] = {
    "columns": list(CODE_COLUMNS),
    "form": '="<代码>"：电子表格按文本显示（不变成 9.14403E+17、不丢前导零）；程序读取时去掉外层 =" "（sink.export_rows.unwrap_csv_text）',
}
"""What ``manifest.json`` says about the wrapped CSV columns, for the bureau's own programs."""
_PLAIN_CODE = re.compile(r"[0-9A-Za-z]+")


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


def csv_row(cells: Sequence[Cell]) -> list[str]:
    """One CSV row: :func:`cell_text` of each cell, plain codes in code columns as ``="…"``."""
    return [_csv_cell(cell, col.code) for cell, col in zip(cells, COLUMNS, strict=True)]


def _csv_cell(value: Cell, code: bool) -> str:
    text = cell_text(value)
    return f'="{text}"' if code and _PLAIN_CODE.fullmatch(text) else text


def unwrap_csv_text(value: str) -> str:
    """The code inside a CSV cell written as ``="…"``; any other cell text unchanged."""
    if value.startswith('="') and value.endswith('"') and _PLAIN_CODE.fullmatch(value[2:-1]):
        return value[2:-1]
    return value


def xlsx_row(sheet: Any, cells: Sequence[Cell]) -> list[Any]:
    """One write-only worksheet row: code columns as string cells formatted ``@`` (Text)."""
    row: list[Any] = []
    for value, col in zip(cells, COLUMNS, strict=True):
        if not col.code:
            row.append(value)
            continue
        cell = WriteOnlyCell(sheet, value=None if value is None else str(value))
        if value is not None:
            cell.data_type = "s"  # _defuse already made sure no code cell starts with "="
        cell.number_format = "@"
        row.append(cell)
    return row


def _defuse(value: Cell) -> Cell:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
