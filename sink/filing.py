"""The filing gap: registered childcare institutions that have not filed (登记未备案), and the reverse.

The health bureau's real question after receiving registrations is who still has to file. Filings
(备案 records) come from the health side's 托育机构备案信息系统 as a CSV export, imported with
:func:`import_filings`; :func:`filing_gap` then compares them with the roster, county by county.

Filings CSV (header row required, other columns ignored; UTF-8 with or without BOM, or GB18030 —
the encoding Chinese government exports commonly use):

==================  ==========================================================================
统一社会信用代码      the institution's USCC (normalised: full-width folded, upper-cased)
备案编号             the filing number — the key: importing the same file twice changes nothing,
                    a changed row updates the stored filing
备案日期             ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYY.MM.DD`` or ``YYYYMMDD``
县级行政区划代码      6 (or 12) digits; may be empty
状态                 free text as the system exports it (已备案, 已变更, 已注销…); a status in
                    :data:`CANCELLED_STATUSES` means the filing no longer counts
==================  ==========================================================================

Rows that cannot be read (no filing number, no USCC, bad date, no status) are reported with their
line number and skipped; the rest import in one transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from schemas.divisions import lookup, normalize_code
from schemas.uscc import normalize as normalize_uscc
from sink.errors import FilingImportError
from sink.exports import UNRESOLVED_COUNTY
from sink.models import filings, institutions
from sink.store import upsert

__all__ = [
    "CANCELLED_STATUSES",
    "COLUMNS",
    "CountyGap",
    "FilingImportResult",
    "GapReport",
    "UnfiledInstitution",
    "UnregisteredFiling",
    "filing_gap",
    "import_filings",
    "parse_filings_csv",
    "upsert_filings",
]

COLUMNS = {
    "统一社会信用代码": "uscc",
    "备案编号": "filing_number",
    "备案日期": "filed_date",
    "县级行政区划代码": "county_code",
    "状态": "status",
}
CANCELLED_STATUSES = frozenset({"已注销", "注销", "已撤销", "撤销", "已作废", "作废", "已取消", "取消备案"})
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class FilingImportResult:
    """Counts of an import; ``errors`` holds (line number, reason) of the rows skipped."""

    read: int
    inserted: int
    updated: int
    unchanged: int
    errors: tuple[tuple[int, str], ...] = ()


def import_filings(engine: sa.Engine, csv_path: str | Path) -> FilingImportResult:
    """Import (upsert on 备案编号) the filings of a CSV export; idempotent."""
    path = Path(csv_path)
    read = inserted = updated = unchanged = 0
    errors: list[tuple[int, str]] = []
    now = datetime.now(UTC)
    with engine.begin() as conn:
        batch: dict[str, dict[str, Any]] = {}
        for line, row, error in _rows(path):
            read += 1
            if error is not None:
                errors.append((line, error))
                continue
            batch[row["filing_number"]] = {**row, "source_file": str(path), "imported_at": now}
            if len(batch) >= _BATCH:
                counts = _flush(conn, batch)
                inserted, updated, unchanged = (
                    inserted + counts[0],
                    updated + counts[1],
                    unchanged + counts[2],
                )
                batch = {}
        counts = _flush(conn, batch)
        inserted, updated, unchanged = inserted + counts[0], updated + counts[1], unchanged + counts[2]
    return FilingImportResult(read, inserted, updated, unchanged, tuple(errors))


def upsert_filings(conn: sa.Connection, batch: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    """Upsert new or changed filings keyed by 备案编号; returns (inserted, updated, unchanged).

    Unchanged rows keep their ``imported_at`` and source file. Public so that every writer of
    ``filings`` (this import, the portal's 网上备案 form and upload) shares one definition of
    "changed", and online entry and CSV import give the same store.
    """
    return _flush(conn, batch)


def _flush(conn: sa.Connection, batch: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    """Upsert new or changed filings; unchanged rows keep their ``imported_at`` and source file."""
    if not batch:
        return 0, 0, 0
    compared = ("uscc", "county_code", "filed_date", "status")
    stored = {
        r["filing_number"]: r
        for r in conn.execute(sa.select(filings).where(filings.c.filing_number.in_(list(batch)))).mappings()
    }
    changed = [
        row
        for number, row in batch.items()
        if number not in stored or any(stored[number][k] != row[k] for k in compared)
    ]
    upsert(conn, filings, changed, key=["filing_number"])
    new = sum(1 for row in changed if row["filing_number"] not in stored)
    return new, len(changed) - new, len(batch) - len(changed)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any], str | None]]:
    # filings exports are small (a province: tens of thousands of rows)
    return parse_filings_csv(path.read_bytes(), str(path))


def parse_filings_csv(raw: bytes, name: str = "<upload>") -> Iterator[tuple[int, dict[str, Any], str | None]]:
    """(line number, parsed row, reason it cannot be read or ``None``) for each row of an export.

    The same reading as :func:`import_filings`, for callers holding the bytes (an upload) that
    want to show a preview before anything is written.
    """
    path = name
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise FilingImportError(f"{path}: neither UTF-8 nor GB18030 text ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or ()]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise FilingImportError(f"{path}: missing column(s) {', '.join(missing)}; found {header}")
    reader.fieldnames = header
    for record in reader:
        values = {COLUMNS[k]: (record.get(k) or "").strip() for k in COLUMNS}
        yield reader.line_num, *_parse(values)


def _parse(values: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    if not values["filing_number"]:
        return values, "备案编号 is empty"
    if not values["uscc"]:
        return values, f"{values['filing_number']}: 统一社会信用代码 is empty"
    if not values["status"]:
        return values, f"{values['filing_number']}: 状态 is empty"
    filed = _date(values["filed_date"])
    if filed is None:
        return values, f"{values['filing_number']}: 备案日期 {values['filed_date']!r} is not a date"
    county = normalize_code(values["county_code"]) if values["county_code"] else None
    if values["county_code"] and county is None:
        return values, f"{values['filing_number']}: 县级行政区划代码 {values['county_code']!r} is not a code"
    return {
        "filing_number": values["filing_number"],
        "uscc": normalize_uscc(values["uscc"]),
        "filed_date": filed,
        "county_code": county,
        "status": values["status"],
    }, None


def _date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


@dataclass(frozen=True, slots=True)
class UnfiledInstitution:
    """登记未备案: an active childcare institution with no filing in force."""

    uscc: str
    name: str
    registered_on: date
    days_since: int
    registrars: str
    address: str


@dataclass(frozen=True, slots=True)
class UnregisteredFiling:
    """备案未登记: a filing whose USCC the roster does not know."""

    filing_number: str
    uscc: str
    filed_date: date
    status: str


@dataclass(slots=True)
class CountyGap:
    """One county's two lists; unfiled institutions oldest first."""

    county_code: str
    county_name: str
    registered_not_filed: list[UnfiledInstitution] = field(default_factory=list)
    filed_not_registered: list[UnregisteredFiling] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """``{"登记未备案": n, "备案未登记": m}``."""
        return {"登记未备案": len(self.registered_not_filed), "备案未登记": len(self.filed_not_registered)}


@dataclass(frozen=True, slots=True)
class GapReport:
    """The filing gap as of a date, per county (in code order)."""

    as_of: date
    counties: tuple[CountyGap, ...]

    @property
    def totals(self) -> dict[str, int]:
        """Counts over all counties."""
        return {
            "登记未备案": sum(len(c.registered_not_filed) for c in self.counties),
            "备案未登记": sum(len(c.filed_not_registered) for c in self.counties),
        }

    def county(self, code: str) -> CountyGap | None:
        """The gap of one county, if it has any."""
        return next((c for c in self.counties if c.county_code == code), None)


def filing_gap(engine: sa.Engine, *, as_of: date) -> GapReport:
    """Both gap lists as of ``as_of``.

    登记未备案: roster rows that are ACTIVE and childcare, registered on or before ``as_of``, with no
    filing dated on or before ``as_of`` whose status is not cancelled. ``registered_on`` is the date
    the institution became a registered childcare institution (``childcare_since``; its 设立 date
    for most), falling back to the first registration date. The roster is the store's *current*
    state: ``as_of`` filters dates, it does not replay history.

    备案未登记: filings in force dated on or before ``as_of`` whose USCC has no roster row at all.
    """
    inst, fil = institutions, filings
    in_force = sa.and_(fil.c.filed_date <= as_of, fil.c.status.not_in(sorted(CANCELLED_STATUSES)))
    registered_on = sa.func.coalesce(
        inst.c.childcare_since, inst.c.first_registration_date, inst.c.last_event_date
    )
    unfiled = (
        sa.select(inst, registered_on.label("registered_on"))
        .where(
            inst.c.status == "ACTIVE",
            inst.c.childcare.is_(True),
            registered_on <= as_of,
            ~sa.exists().where(fil.c.uscc == inst.c.uscc, in_force),
        )
        .order_by(inst.c.county_code, registered_on, inst.c.uscc)
    )
    orphans = (
        sa.select(fil)
        .where(in_force, ~sa.exists().where(inst.c.uscc == fil.c.uscc))
        .order_by(fil.c.county_code, fil.c.filed_date, fil.c.filing_number)
    )
    gaps: dict[str, CountyGap] = {}
    with engine.connect() as conn:
        for r in conn.execute(unfiled).mappings():
            when = r["registered_on"]
            _gap(gaps, r["county_code"]).registered_not_filed.append(
                UnfiledInstitution(
                    r["uscc"], r["name"], when, (as_of - when).days, r["registrars"], r["address"]
                )
            )
        for r in conn.execute(orphans).mappings():
            _gap(gaps, r["county_code"]).filed_not_registered.append(
                UnregisteredFiling(r["filing_number"], r["uscc"], r["filed_date"], r["status"])
            )
    return GapReport(as_of, tuple(gaps[k] for k in sorted(gaps)))


def _gap(gaps: dict[str, CountyGap], code: str | None) -> CountyGap:
    county_code, county_name = UNRESOLVED_COUNTY if not code else (code, _name(code))
    if county_code not in gaps:
        gaps[county_code] = CountyGap(county_code, county_name)
    return gaps[county_code]


def _name(code: str) -> str:
    division = lookup(code)
    return division.name if division is not None else "未知区划"
