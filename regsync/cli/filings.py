"""``regsync filings import`` and ``regsync gap``: the health side's filings (备案) and who has not filed.

Both reuse what the web service does, so the command line and the portal cannot disagree: the
import checks every line with :func:`portal.filing.preview` (the upload page's accepted/refused
preview) and writes with :func:`portal.filing.write`; the gap is :func:`sink.filing.filing_gap`.
The operator acts for every county (the portal's ``admin`` scope).
"""

from __future__ import annotations

import getpass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from regsync.cli.app import app
from regsync.cli.output import JsonOpt, console, defuse, emit_csv, emit_json, out, step
from regsync.settings import get_settings
from schemas.errors import ConfigurationError, DataQualityError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from sink.filing import GapReport

filings_app = typer.Typer(
    help="Filings (备案) from the provincial 托育机构备案信息系统: import its CSV export."
)
app.add_typer(filings_app, name="filings")

MAX_FILE_BYTES = 64 * 1024 * 1024
"""A province's export is a few MB; a file far larger is the wrong file, refused before it is read."""

GAP_HEADERS = (
    "统一社会信用代码",
    "机构名称",
    "县级行政区划代码",
    "县级行政区划",
    "登记日期",
    "登记天数",
    "登记机关",
    "住所",
)
"""The columns of the 登记未备案 list as CSV and XLSX (the portal's gap.csv, plus the county name)."""
ORPHAN_HEADERS = ("备案编号", "统一社会信用代码", "县级行政区划代码", "县级行政区划", "备案日期", "状态")


def _engine() -> sa.Engine:
    """The filing store, probed and checked for its tables before any work."""
    import sqlalchemy as sa

    from regsync import endpoints

    settings = get_settings()
    url = endpoints.resolve_database(settings)
    endpoints.probe_database(url, settings.probe_timeout)
    engine = sa.create_engine(url)
    if not sa.inspect(engine).has_table("filings"):
        engine.dispose()
        raise ConfigurationError(
            "the filing store has no tables in this database", hint="run `regsync init` first"
        )
    return engine


def _who() -> Any:
    from portal.scope import Principal

    return Principal(kind="user", role="admin", region="", name=f"cli:{getpass.getuser()}")


@filings_app.command("import")
def filings_import(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
            help="The CSV export (UTF-8 or GB18030; columns 统一社会信用代码, 备案编号, 备案日期, 县级行政区划代码, 状态).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every line and show the preview; write nothing.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Import filings: every line accepted or refused (with why), accepted ones upserted on 备案编号.

    Exit 0 when every line was accepted; 65 when any was refused (the accepted ones are written all
    the same, as the portal's upload does; re-importing the file changes nothing).
    """
    from portal import filing
    from sink.filing import parse_filings_csv

    size = file.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataQualityError(
            f"{file}: {size:,} bytes; a filings export is at most {MAX_FILE_BYTES // 2**20} MB",
            hint="is this the 备案 CSV export?",
        )
    data = file.read_bytes()
    list(parse_filings_csv(data, str(file)))  # an unreadable file (encoding, columns) fails here, whole
    engine = _engine()
    try:
        with step(f"filings import {file.name}"), engine.begin() as conn:
            checked = filing.preview(conn, _who(), data)
            accepted = [c.row for c in checked if c.row is not None]
            counts = (0, 0, 0) if dry_run else filing.write(conn, accepted, f"CLI {file} {getpass.getuser()}")
    finally:
        engine.dispose()
    refused = [c for c in checked if c.row is None]
    summary: dict[str, Any] = {
        "file": str(file),
        "dry_run": dry_run,
        "lines": len(checked),
        "accepted": len(accepted),
        "refused": len(refused),
        "inserted": counts[0],
        "updated": counts[1],
        "unchanged": counts[2],
        "preview": [
            {
                "line": c.line,
                "filing_number": (c.row or c.values).get("filing_number"),
                "uscc": (c.row or c.values).get("uscc"),
                "status": (c.row or c.values).get("status"),
                "accepted": c.row is not None,
                "reason": c.reason,
            }
            for c in checked
        ],
    }
    if json_out:
        emit_json(summary)
    else:
        table = Table("line", "备案编号", "统一社会信用代码", "状态", "verdict")
        for row in summary["preview"]:
            verdict = "[green]accepted[/]" if row["accepted"] else f"[red]refused[/]: {row['reason']}"
            table.add_row(str(row["line"]), row["filing_number"], row["uscc"], row["status"], verdict)
        out.print(table)
        written = (
            "nothing written (dry run)"
            if dry_run
            else f"{counts[0]:,} inserted, {counts[1]:,} updated, {counts[2]:,} unchanged"
        )
        if not checked:
            written = "the file has a header but no filings; " + written
        out.print(
            f"{file.name}: {len(accepted):,} accepted, {len(refused):,} refused; {written}", highlight=False
        )
    if refused:
        raise DataQualityError(
            f"{len(refused):,} of {len(checked):,} lines refused (each with its reason above)",
            hint="correct them in the file and import it again; accepted lines are unchanged by a re-import",
        )


class GapFormat(StrEnum):
    """How ``regsync gap`` prints."""

    table = "table"
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


def _county_arg(value: str | None) -> str | None:
    from schemas.divisions import lookup, normalize_code
    from sink.exports import UNRESOLVED_COUNTY

    if value is None or value == UNRESOLVED_COUNTY[0]:
        return value
    code = normalize_code(value)
    if code is None:
        raise typer.BadParameter(f"not a county code: {value!r} (6 digits, e.g. 440305)")
    if lookup(code) is None:
        raise typer.BadParameter(f"no current division has the code {code}")
    return code


def _date_arg(value: str | None) -> str | None:
    if value is not None:
        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise typer.BadParameter(f"not a date: {value!r} (YYYY-MM-DD)") from exc
    return value


@app.command("gap")
def gap_cmd(
    county: Annotated[
        str | None,
        typer.Option(metavar="CODE", help="Only this county (6-digit code).", callback=_county_arg),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", metavar="YYYY-MM-DD", help="The day to judge on (default: today).", callback=_date_arg
        ),
    ] = None,
    fmt: Annotated[
        GapFormat,
        typer.Option(
            "--format",
            help="table: counts per county; csv: the 登记未备案 rows; xlsx: both lists (needs --output); "
            "json: both lists.",
        ),
    ] = GapFormat.table,
    json_out: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Same as --format csv.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="FILE", dir_okay=False, help="Write to FILE instead of stdout."
        ),
    ] = None,
) -> None:
    """The filing gap: 登记未备案 (registered, no filing in force) and 备案未登记, per county."""
    from sink.filing import filing_gap

    if json_out and csv_out:
        raise typer.BadParameter("--json and --csv exclude each other", param_hint="--json")
    fmt = GapFormat.json if json_out else GapFormat.csv if csv_out else fmt
    if fmt is GapFormat.xlsx and output is None:
        raise typer.BadParameter("xlsx is binary: name the file with --output", param_hint="--format")
    if fmt is GapFormat.table and output is not None:
        raise typer.BadParameter("--output takes csv, xlsx or json", param_hint="--output")
    settings = get_settings()
    day = date.fromisoformat(as_of) if as_of else datetime.now(ZoneInfo(settings.timezone)).date()
    engine = _engine()
    try:
        with step("gap: roster against filings"):
            report = filing_gap(engine, as_of=day)
    finally:
        engine.dispose()
    counties = [c for c in report.counties if county is None or c.county_code == county]
    if fmt is GapFormat.table:
        _gap_table(report, counties)
    elif fmt is GapFormat.json:
        _write(output, lambda: emit_json(_gap_json(report, counties)))
    elif fmt is GapFormat.csv:
        _write(output, lambda: emit_csv(GAP_HEADERS, _unfiled_rows(counties)))
    else:
        assert output is not None
        _gap_xlsx(output, counties)
    if output is not None:
        console.print(f"[dim]wrote {output}[/]", highlight=False)


def _unfiled_rows(counties: list[Any]) -> list[list[Any]]:
    from schemas.masking import mask_text

    return [
        [
            u.uscc,
            u.name,
            c.county_code,
            c.county_name,
            u.registered_on.isoformat(),
            u.days_since,
            u.registrars,
            mask_text(u.address),
        ]
        for c in counties
        for u in c.registered_not_filed
    ]


def _orphan_rows(counties: list[Any]) -> list[list[Any]]:
    return [
        [f.filing_number, f.uscc, c.county_code, c.county_name, f.filed_date.isoformat(), f.status]
        for c in counties
        for f in c.filed_not_registered
    ]


def _gap_json(report: GapReport, counties: list[Any]) -> dict[str, Any]:
    return {
        "as_of": report.as_of,
        "totals": {
            "登记未备案": sum(len(c.registered_not_filed) for c in counties),
            "备案未登记": sum(len(c.filed_not_registered) for c in counties),
        },
        "counties": [
            {
                "county_code": c.county_code,
                "county_name": c.county_name,
                "登记未备案": [dict(zip(GAP_HEADERS, row, strict=True)) for row in _unfiled_rows([c])],
                "备案未登记": [dict(zip(ORPHAN_HEADERS, row, strict=True)) for row in _orphan_rows([c])],
            }
            for c in counties
        ],
    }


def _gap_table(report: GapReport, counties: list[Any]) -> None:
    table = Table("county", "name", "登记未备案", "备案未登记", "longest wait (days)")
    for c in counties:
        longest = max((u.days_since for u in c.registered_not_filed), default=0)
        table.add_row(
            c.county_code,
            c.county_name,
            f"{len(c.registered_not_filed):,}",
            f"{len(c.filed_not_registered):,}",
            f"{longest:,}",
        )
    out.print(table)
    unfiled = sum(len(c.registered_not_filed) for c in counties)
    orphans = sum(len(c.filed_not_registered) for c in counties)
    out.print(
        f"as of {report.as_of}: {unfiled:,} registered but not filed, {orphans:,} filed but not registered "
        f"({len(counties)} counties)",
        highlight=False,
    )


def _write(output: Path | None, emit: Any) -> None:
    """Run ``emit`` (which prints to stdout) into ``output`` when given, atomically."""
    import contextlib
    import os
    import sys

    if output is None:
        emit()
        return
    partial = output.with_name(output.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle, contextlib.redirect_stdout(handle):
        emit()
        sys.stdout.flush()
    os.replace(partial, output)


def _gap_xlsx(output: Path, counties: list[Any]) -> None:
    import os

    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for title, header, rows in (
        ("登记未备案", GAP_HEADERS, _unfiled_rows(counties)),
        ("备案未登记", ORPHAN_HEADERS, _orphan_rows(counties)),
    ):
        sheet = book.create_sheet(title)
        sheet.append(list(header))
        for row in rows:
            sheet.append([defuse(v) if isinstance(v, str) else v for v in row])
    partial = output.with_name(output.name + ".partial")
    book.save(partial)
    os.replace(partial, output)
