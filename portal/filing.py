"""网上备案: recording filings online or from the provincial system's CSV, with one set of rules.

Both paths validate each filing the same way (:func:`check`) and write through
:func:`sink.filing.upsert_filings`, with the county taken from the roster (not from the form or
file), so online entry and CSV import of the same filings leave identical rows except for the
provenance (``source_file`` names the acting user and the path). Importing twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from portal.queries import REGISTERED_ON
from portal.scope import Principal
from schemas.uscc import normalize as normalize_uscc
from sink.errors import FilingImportError
from sink.filing import parse_filings_csv, upsert_filings
from sink.models import filings, institutions

STATUSES = ("已备案", "已变更", "已注销")
"""The statuses a bureau records online (the CSV may carry others; they are stored as given)."""


@dataclass(frozen=True, slots=True)
class Checked:
    """One filing after validation: the row to write, or the reason it is refused."""

    line: int
    values: dict[str, Any]
    row: dict[str, Any] | None
    reason: str | None


def check(conn: sa.Connection, who: Principal, values: dict[str, Any], line: int = 0) -> Checked:
    """Validate one filing for the caller (the same rules online and by file).

    USCC known in the caller's county, date not before registration nor in the future, number not
    used by another institution.
    """
    number = str(values.get("filing_number") or "").strip()
    uscc = normalize_uscc(str(values.get("uscc") or ""))
    status = str(values.get("status") or "").strip()
    filed = values.get("filed_date")
    if not number:
        return Checked(line, values, None, "备案编号为空 / filing number missing")
    if len(number) > 64:
        return Checked(line, values, None, "备案编号过长 / filing number too long")
    if not isinstance(filed, date):
        return Checked(line, values, None, "备案日期无效 / invalid filing date")
    if not status:
        return Checked(line, values, None, "状态为空 / status missing")
    row = (
        conn.execute(
            sa.select(institutions.c.county_code, REGISTERED_ON.label("registered_on")).where(
                institutions.c.uscc == uscc, who.where(institutions.c.county_code)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return Checked(
            line, values, None, f"{uscc}: 本辖区无此登记机构 / no registered institution in your county"
        )
    if row["registered_on"] is not None and filed < row["registered_on"]:
        return Checked(
            line, values, None, f"备案日期早于登记日期 {row['registered_on']} / filed before registration"
        )
    if filed > datetime.now(UTC).date():
        return Checked(line, values, None, "备案日期在未来 / filing date in the future")
    owner = conn.scalar(sa.select(filings.c.uscc).where(filings.c.filing_number == number))
    if owner is not None and owner != uscc:
        return Checked(line, values, None, f"备案编号 {number} 已被其他机构使用 / number already used")
    return Checked(
        line,
        values,
        {
            "filing_number": number,
            "uscc": uscc,
            "filed_date": filed,
            "county_code": row["county_code"],
            "status": status,
        },
        None,
    )


def write(conn: sa.Connection, rows: list[dict[str, Any]], source: str) -> tuple[int, int, int]:
    """Upsert checked rows; (inserted, updated, unchanged)."""
    now = datetime.now(UTC)
    batch = {r["filing_number"]: {**r, "source_file": source, "imported_at": now} for r in rows}
    return upsert_filings(conn, batch)


def preview(conn: sa.Connection, who: Principal, data: bytes) -> list[Checked]:
    """Every line of an uploaded export, checked; nothing written."""
    out: list[Checked] = []
    try:
        parsed = list(parse_filings_csv(data, "upload"))
    except FilingImportError as exc:
        return [Checked(1, {}, None, str(exc).replace("upload: ", ""))]
    numbers: dict[str, int] = {}
    for line, values, error in parsed:
        if error is not None:
            out.append(Checked(line, values, None, error))
            continue
        checked = check(conn, who, values, line)
        if checked.row is not None:
            first = numbers.setdefault(checked.row["filing_number"], line)
            if first != line:
                checked = Checked(
                    line, values, None, f"与第 {first} 行备案编号重复 / duplicate of line {first}"
                )
        out.append(checked)
    return out
