"""The audit report's per-record appendix as CSV and XLSX files beside the HTML report.

Why files as well as the HTML tables: auditors filter, sort and annotate the records (a rejected
record per row, a late push per row) in a spreadsheet, and forward one table to one county. So the
same rows the report shows are written as ``audit-<month>-<table>.csv`` (UTF-8 with BOM, CRLF, one per
table) and one workbook ``audit-<month>-appendix.xlsx`` (one sheet per table), in the reports folder.

They follow the county packages' conventions (:mod:`sink.export_rows`): code columns (USCC, division
codes; ``Column(code=True)``) stay text — ``="…"`` in the CSV, ``@``-formatted string cells in the
XLSX — so 914403001922038216 never becomes 9.14403E+17; text starting with ``= + - @`` is prefixed with
``'`` so no cell is a formula. Every value comes from :class:`~quality.report_model.MonthlyMetrics`,
where names and messages are already masked; they are masked again here. Files are written under a
temporary name, renamed, and made 0644 like the packages and the report.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from quality.report import APPENDIX_TABLES, appendix_csv_name, appendix_xlsx_name
from quality.report_model import MonthlyMetrics
from schemas.masking import mask_text
from sink.export_rows import Cell, Column, cell_text

__all__ = ["appendix_tables", "write_appendices"]

FILE_MODE: Final = 0o644
_PLAIN_CODE: Final = re.compile(r"[0-9A-Za-z]+")


def _text(key: str) -> Any:
    return lambda row: row[key]


def _code(header: str, key: str, width: int = 22) -> Column:
    return Column(header, width, _text(key), code=True)


def _col(header: str, key: str, width: int = 16) -> Column:
    return Column(header, width, _text(key))


_LATE_COLUMNS: Final = (
    _code("统一社会信用代码", "uscc"),
    _col("机构名称", "name", 36),
    _col("登记机关", "registrar"),
    _col("事件类型", "event_type", 18),
    _code("县级行政区划代码", "county_code", 14),
    _col("登记(核准)日期", "event_date", 14),
    _col("推送时间", "pushed_at", 20),
    _col("逾期月数", "months_late", 10),
    _col("LATE_PUSH警告", "warned", 12),
)

COLUMNS: Final[dict[str, tuple[Column, ...]]] = {
    "rejected": (
        _col("拒收规则", "rules", 28),
        _code("统一社会信用代码", "uscc"),
        _col("机构名称", "name", 36),
        _col("登记机关", "registrar"),
        _col("来源", "source", 12),
        _code("县级行政区划代码", "county_code", 14),
        _col("事件类型", "event_type", 18),
        _col("推送时间", "pushed_at", 20),
        _col("全部违规(规则：说明)", "violations", 80),
    ),
    "late": _LATE_COLUMNS,
    "misses": _LATE_COLUMNS,
    "unfiled": (
        _code("县级行政区划代码", "county_code", 14),
        _code("统一社会信用代码", "uscc"),
        _col("机构名称", "name", 36),
        _col("登记日期", "registered_on", 14),
        _col("登记至今天数", "days_since", 12),
        _col("登记机关", "registrars", 20),
    ),
    "packages": (
        _code("县级行政区划代码", "county_code", 14),
        _col("县区", "county_name", 14),
        _col("行数", "rows", 8),
        _col("逾期推送", "late", 10),
        _col("registrations.csv SHA-256", "csv_sha256", 66),
        _col("registrations.xlsx SHA-256", "xlsx_sha256", 66),
        _col("manifest.json SHA-256", "manifest_sha256", 66),
    ),
}
"""The columns of each appendix table (keys of :data:`quality.report.APPENDIX_TABLES`)."""


def appendix_tables(metrics: MonthlyMetrics) -> dict[str, list[dict[str, Cell]]]:
    """The appendix rows, table by table, as plain cells (also what the tests compare with the HTML)."""
    zone = ZoneInfo(metrics.timezone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def registrar(value: Any) -> str:
        return "未知登记机关" if value is None else str(value.label_zh)

    def late_rows(items: Sequence[Any]) -> list[dict[str, Cell]]:
        return [
            {
                "uscc": p.uscc,
                "name": p.name,
                "registrar": registrar(p.registrar),
                "event_type": p.event_type.label_zh,
                "county_code": p.county_code,
                "event_date": p.event_date,
                "pushed_at": local(p.pushed_at),
                "months_late": p.months_late,
                "warned": "是" if p.warned else "否",
            }
            for p in items
        ]

    gate = metrics.beyond_gate
    return {
        "rejected": [
            {
                "rules": "、".join(r.rule_ids),
                "uscc": r.uscc,
                "name": r.name,
                "registrar": registrar(r.registrar),
                "source": r.source,
                "county_code": r.county_code,
                "event_type": None if r.event_type is None else r.event_type.label_zh,
                "pushed_at": local(r.pushed_at),
                "violations": "；".join(f"{rule}：{message}" for rule, _, message in r.violations),
            }
            for r in metrics.rejected_records
        ],
        "late": late_rows(metrics.late_pushes),
        "misses": late_rows(metrics.timeliness_misses),
        "unfiled": [
            {
                "county_code": u.county_code,
                "uscc": u.uscc,
                "name": u.name,
                "registered_on": u.registered_on,
                "days_since": u.days_since,
                "registrars": u.registrars,
            }
            for u in metrics.unfiled
        ],
        "packages": [
            {
                "county_code": p.county_code,
                "county_name": p.county_name,
                "rows": p.rows,
                "late": p.late,
                "csv_sha256": p.csv_sha256,
                "xlsx_sha256": p.xlsx_sha256,
                "manifest_sha256": p.manifest_sha256,
            }
            for p in (gate.packages if gate is not None else ())
        ],
    }


def write_appendices(metrics: MonthlyMetrics, out_dir: Path | str) -> list[Path]:
    """Write one CSV per appendix table and the workbook into ``out_dir``; returns their paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tables = appendix_tables(metrics)
    written = []
    for key in APPENDIX_TABLES:
        path = folder / appendix_csv_name(metrics.month, key)
        _write_csv(path, COLUMNS[key], tables[key])
        written.append(path)
    path = folder / appendix_xlsx_name(metrics.month)
    _write_xlsx(path, tables)
    written.append(path)
    return written


def _cells(columns: Sequence[Column], row: Mapping[str, Cell]) -> list[Cell]:
    return [_defuse(_masked(col.value(row), col.code)) for col in columns]


def _masked(value: Cell, code: bool) -> Cell:
    return mask_text(value) if isinstance(value, str) and not code else value


def _defuse(value: Cell) -> Cell:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_cell(value: Cell, code: bool) -> str:
    text = cell_text(value)
    return f'="{text}"' if code and _PLAIN_CODE.fullmatch(text) else text


def _write_csv(path: Path, columns: Sequence[Column], rows: Sequence[Mapping[str, Cell]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n")
            writer.writerow([c.header for c in columns])
            for row in rows:
                cells = _cells(columns, row)
                writer.writerow([_csv_cell(v, c.code) for v, c in zip(cells, columns, strict=True)])
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_xlsx(path: Path, tables: Mapping[str, Sequence[Mapping[str, Cell]]]) -> None:
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    for key, (title, _) in APPENDIX_TABLES.items():
        columns = COLUMNS[key]
        sheet = workbook.create_sheet(title)
        sheet.freeze_panes = "A2"
        for i, col in enumerate(columns, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = col.width
        header = []
        for col in columns:
            cell = WriteOnlyCell(sheet, value=col.header)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in tables[key]:
            out: list[Any] = []
            for value, col in zip(_cells(columns, row), columns, strict=True):
                if col.code:
                    cell = WriteOnlyCell(sheet, value=None if value is None else str(value))
                    cell.number_format = "@"
                    out.append(cell)
                else:
                    out.append(value.isoformat() if isinstance(value, date) else value)
            sheet.append(out)
    workbook.properties.creator = "regsync"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        workbook.save(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
