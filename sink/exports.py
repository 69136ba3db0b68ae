"""County push packages: one folder per county with the month's registrations, for its health bureau.

``export_month(engine, month, out_dir)`` writes, for every county with events loaded in the month,
``out_dir/<month>/<county code>_<county name>/`` holding:

* ``registrations.csv`` — UTF-8 **with BOM** (Excel otherwise reads the Chinese as mojibake), CRLF,
  code columns as ``="…"`` so a spreadsheet keeps them text (see :mod:`sink.export_rows`);
* ``registrations.xlsx`` — the same rows, Chinese header row in bold, frozen, sized columns;
* ``manifest.json`` — month, county, row counts by event type, late count, SHA-256 and size of each
  file, the load manifests the data came from, ``generated_at``.

Rows are sorted (event date, USCC, Kafka position), so a re-export of the same data gives the same
CSV bytes — and the same XLSX bytes too: the workbook's timestamps are pinned to the month's last
load and the zip entries' dates to a constant, so a bureau can compare hashes across re-sends.
Only ``manifest.json`` changes (``generated_at``). Events whose county could not be resolved go to
``000000_县区未定位`` rather than being dropped. Each package is recorded in ``county_pushes``.
Files are written under a temporary name and renamed, so a crash never leaves a half file under the
final name. Memory stays flat: rows stream from the database into both writers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from schemas.divisions import lookup
from sink.export_rows import COLUMNS, CSV_TEXT_COLUMNS, csv_row, event_row, xlsx_row
from sink.models import county_pushes, institution_events, load_manifests

__all__ = ["UNRESOLVED_COUNTY", "PackageInfo", "export_month"]

UNRESOLVED_COUNTY = ("000000", "县区未定位")
"""Code and name of the package holding events whose county is unknown (not a real division)."""
CSV_NAME, XLSX_NAME, MANIFEST_NAME = "registrations.csv", "registrations.xlsx", "manifest.json"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class PackageInfo:
    """One county's package as written."""

    month: str
    county_code: str
    county_name: str
    directory: Path
    rows: int
    late: int
    counts_by_type: dict[str, int]
    files: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


def export_month(engine: sa.Engine, month: str, out_dir: str | Path) -> list[PackageInfo]:
    """Write every county's package for ``month`` and record them; returns them in county order."""
    ev = institution_events
    with engine.connect() as conn:
        counties = sorted(
            conn.scalars(sa.select(ev.c.county_code).where(ev.c.load_month == month).distinct()),
            key=lambda c: c or "",
        )
        sources = [
            {"topic": r.topic, "run_id": r.run_id, "checksum": r.checksum, "loaded_at": _iso(r.loaded_at)}
            for r in conn.execute(
                sa.select(load_manifests)
                .where(load_manifests.c.month == month)
                .order_by(load_manifests.c.topic)
            )
        ]
    data_as_of = max((s["loaded_at"] for s in sources), default=f"{month}-01T00:00:00+00:00")
    packages = []
    for code in counties:
        county_code, county_name = _county(code)
        target = Path(out_dir) / month / f"{county_code}_{county_name}"
        target.mkdir(parents=True, exist_ok=True)
        with engine.connect() as conn:
            info = _write_package(conn, month, code, county_code, county_name, target, data_as_of)
        manifest = {
            "month": month,
            "county_code": county_code,
            "county_name": county_name,
            "rows": info.rows,
            "rows_by_event_type": info.counts_by_type,
            "late": info.late,
            "files": {
                name: {"sha256": info.sha256[name], "bytes": info.files[name].stat().st_size}
                for name in (CSV_NAME, XLSX_NAME)
            },
            "columns": [c.header for c in COLUMNS],
            "csv_text_columns": CSV_TEXT_COLUMNS,
            "personal_data": "证件号码、联系电话已脱敏；保留法定代表人姓名（备案核验与联系所需）",
            "sources": sources,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        manifest_path = target / MANIFEST_NAME
        _write_atomic(
            manifest_path, json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
        )
        info.files[MANIFEST_NAME] = manifest_path
        info.sha256[MANIFEST_NAME] = _sha256(manifest_path)
        packages.append(info)
    if packages:
        _record(engine, packages)
    return packages


def _record(engine: sa.Engine, packages: list[PackageInfo]) -> None:
    """One ``county_pushes`` row per package: what was written, where, and its hashes."""
    now = datetime.now(UTC)
    rows = [
        {
            "month": p.month,
            "county_code": p.county_code,
            "county_name": p.county_name,
            "directory": str(p.directory),
            "csv_path": str(p.files[CSV_NAME]),
            "csv_sha256": p.sha256[CSV_NAME],
            "xlsx_path": str(p.files[XLSX_NAME]),
            "xlsx_sha256": p.sha256[XLSX_NAME],
            "manifest_path": str(p.files[MANIFEST_NAME]),
            "manifest_sha256": p.sha256[MANIFEST_NAME],
            "rows": p.rows,
            "late": p.late,
            "counts_by_type": p.counts_by_type,
            "created_at": now,
        }
        for p in packages
    ]
    with engine.begin() as conn:
        conn.execute(county_pushes.insert(), rows)


def _county(code: str | None) -> tuple[str, str]:
    if not code:
        return UNRESOLVED_COUNTY
    division = lookup(code)
    return code, division.name if division is not None else "未知区划"


def _write_package(
    conn: sa.Connection,
    month: str,
    stored_code: str | None,
    county_code: str,
    county_name: str,
    target: Path,
    data_as_of: str,
) -> PackageInfo:
    ev = institution_events
    county_filter = ev.c.county_code.is_(None) if stored_code is None else ev.c.county_code == stored_code
    query = (
        sa.select(ev.c.event_json, ev.c.pushed_at, ev.c.late, ev.c.county_code, ev.c.event_type)
        .where(ev.c.load_month == month, county_filter)
        .order_by(ev.c.event_date, ev.c.uscc, ev.c.kafka_topic, ev.c.kafka_partition, ev.c.kafka_offset)
    )
    csv_path, xlsx_path = target / CSV_NAME, target / XLSX_NAME
    csv_tmp, xlsx_tmp = csv_path.with_suffix(".csv.tmp"), xlsx_path.with_suffix(".xlsx.tmp")
    counts: Counter[str] = Counter()
    late = 0
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("登记信息")
    sheet.freeze_panes = "A2"
    for i, col in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = col.width
    bold = Font(bold=True)
    sheet.append([_bold_cell(sheet, col.header, bold) for col in COLUMNS])
    with csv_tmp.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow([col.header for col in COLUMNS])
        for row in conn.execute(query.execution_options(yield_per=1000)):
            cells = event_row(
                row.event_json, pushed_at=row.pushed_at, late=row.late, county_code=row.county_code
            )
            writer.writerow(csv_row(cells))
            sheet.append(xlsx_row(sheet, cells))
            counts[row.event_type] += 1
            late += bool(row.late)
    workbook.properties.creator = "regsync"
    pinned = datetime.fromisoformat(data_as_of).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    workbook.properties.created = pinned
    workbook.save(xlsx_tmp)
    _pin_zip(xlsx_tmp, pinned)
    os.replace(csv_tmp, csv_path)
    os.replace(xlsx_tmp, xlsx_path)
    return PackageInfo(
        month=month,
        county_code=county_code,
        county_name=county_name,
        directory=target,
        rows=sum(counts.values()),
        late=late,
        counts_by_type=dict(sorted(counts.items())),
        files={CSV_NAME: csv_path, XLSX_NAME: xlsx_path},
        sha256={CSV_NAME: _sha256(csv_path), XLSX_NAME: _sha256(xlsx_path)},
    )


def _bold_cell(sheet: Any, value: str, font: Font) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.font = font
    return cell


def _pin_zip(path: Path, moment: datetime) -> None:
    """Rewrite the XLSX zip with constant entry dates and ``modified`` = ``moment`` (openpyxl uses now).

    Streams entry by entry into a sibling file, so a large workbook is never held in memory.
    """
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    pinned = path.with_name(path.name + ".pin")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(pinned, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, _ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + stamp, src.read(info))
                dst.writestr(entry, data)
                continue
            with src.open(info) as reader, dst.open(entry, "w") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
    os.replace(pinned, path)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _iso(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds")
