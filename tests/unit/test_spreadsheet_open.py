"""The packages as a clerk's spreadsheet program reads them: codes stay text (issue 15 §6).

Headless LibreOffice converts the package's CSV (and XLSX) to XLSX, and openpyxl reads the cells back.
The CSV is imported with LibreOffice's *interactive* defaults (UTF-8 chosen as the dialog does from the
BOM, Chinese locale, "detect special numbers" off, "evaluate formulas" off — the default of the Text
Import dialog in LibreOffice 7.4's registry) and again with "evaluate formulas" on (the default of a
headless conversion without filter options). Each run uses its own LibreOffice profile so parallel
test runs do not share one, and every conversion has a timeout.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest

from schemas.events import EventType, InstitutionStatus, JurisdictionMove
from sink.export_rows import CODE_COLUMNS, unwrap_csv_text
from sink.exports import export_month
from sink.loader import PositionedEvent, load_month
from sink.store import create_engine, upgrade
from sink.synthetic import make_event

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
pytestmark = [
    pytest.mark.spreadsheet,
    pytest.mark.skipif(
        SOFFICE is None,
        reason="LibreOffice is not installed (Debian: apt-get install libreoffice-calc-nogui)",
    ),
]

DIGIT_USCC = "914403001922038216"
# Text CSV filter: separator ',', text delimiter '"', UTF-8 (76), from row 1, no column types, zh-CN
# (2052), quoted field as text off, detect special numbers off, tokens 9-12 (export options, trim off),
# token 13 = evaluate formulas.
_CSV_FILTER = "Text - txt - csv (StarCalc):44,34,76,1,,2052,false,false,false,false,false,false,{evaluate}"
_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("spreadsheet")
    url = f"sqlite:///{root / 'store.db'}"
    upgrade(url)
    engine = create_engine(url)
    events = [
        make_event(DIGIT_USCC, EventType.ESTABLISHED, date(2025, 3, 2), county="370103"),
        make_event(
            DIGIT_USCC,
            EventType.MOVED_OUT,
            date(2025, 3, 9),
            county="370103",
            version=2,
            status=InstitutionStatus.MOVED_OUT,
            move=JurisdictionMove("370103", "370102"),
        ),
    ]
    pushed = int(datetime(2025, 3, 12, 3, tzinfo=UTC).timestamp() * 1000)
    records = [PositionedEvent(0, i, pushed, e) for i, e in enumerate(events)]
    load_month(
        engine,
        month="2025-03",
        topic="t",
        positioned=records,
        offset_ranges={0: (0, len(records))},
        run_id="r",
    )
    (written,) = export_month(engine, "2025-03", root / "out")
    engine.dispose()
    return written


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lo-profile")


def convert(source: Path, outdir: Path, profile: Path, infilter: str | None = None) -> Path:
    """``soffice --headless --convert-to xlsx`` with a private profile; returns the converted file."""
    command = [SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore"]
    if infilter is not None:
        command.append(f"--infilter={infilter}")
    command += ["--convert-to", "xlsx", "--outdir", str(outdir), str(source)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    target = outdir / (source.stem + ".xlsx")
    assert done.returncode == 0 and target.exists(), (done.returncode, done.stdout, done.stderr)
    return target


def expected_codes(package) -> list[dict[str, str]]:
    """Code columns per data row, as the CSV means them (unwrapped)."""
    with package.files["registrations.csv"].open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [{name: unwrap_csv_text(row[name]) for name in CODE_COLUMNS} for row in rows]


def read_back(path: Path) -> tuple[list[str], list[list[object]]]:
    sheet = openpyxl.load_workbook(path, data_only=True).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    return [str(h) for h in rows[0]], rows[1:]


def assert_codes_are_text(header, rows, expected, *, unwrap: bool) -> None:
    assert len(rows) == len(expected) == 2
    for row, want in zip(rows, expected, strict=True):
        for name in CODE_COLUMNS:
            value = row[header.index(name)]
            if not want[name]:
                assert value in (None, ""), (name, value)
                continue
            assert isinstance(value, str), (name, value)  # never a float such as 9.14403E+17
            assert (unwrap_csv_text(value) if unwrap else value) == want[name], (name, value)


def test_csv_codes_stay_text_with_evaluate_formulas_on(package, profile, tmp_path):
    out = convert(package.files["registrations.csv"], tmp_path, profile, _CSV_FILTER.format(evaluate="true"))
    header, rows = read_back(out)
    assert header[0] == "统一社会信用代码"  # UTF-8 read as UTF-8
    expected = expected_codes(package)
    assert expected[0]["统一社会信用代码"] == DIGIT_USCC
    assert_codes_are_text(header, rows, expected, unwrap=False)  # the cell shows exactly the code


def test_csv_codes_stay_text_with_the_import_dialog_defaults(package, profile, tmp_path):
    # "Evaluate formulas" off: Calc shows ="914403001922038216" as text — every digit kept, never a number.
    out = convert(package.files["registrations.csv"], tmp_path, profile, _CSV_FILTER.format(evaluate="false"))
    header, rows = read_back(out)
    assert_codes_are_text(header, rows, expected_codes(package), unwrap=True)
    assert rows[0][header.index("统一社会信用代码")] == f'="{DIGIT_USCC}"'


def test_plain_digits_would_become_a_float(profile, tmp_path):
    # The control that makes the two tests above meaningful: the same import turns bare digits into
    # a float that has lost the last digits (what issue 15 saw in Excel).
    plain = tmp_path / "plain.csv"
    plain.write_text(f"统一社会信用代码,县级行政区划代码\r\n{DIGIT_USCC},370103\r\n", encoding="utf-8-sig")
    outdir = tmp_path / "out"
    outdir.mkdir()
    _, rows = read_back(convert(plain, outdir, profile, _CSV_FILTER.format(evaluate="true")))
    assert isinstance(rows[0][0], float)
    assert f"{rows[0][0]:.0f}" != DIGIT_USCC
    assert not isinstance(rows[0][1], str)


def test_xlsx_codes_stay_text_through_libreoffice(package, profile, tmp_path):
    out = convert(package.files["registrations.xlsx"], tmp_path, profile)
    header, rows = read_back(out)
    assert_codes_are_text(header, rows, expected_codes(package), unwrap=False)
    sheet = openpyxl.load_workbook(out).active
    uscc = sheet.cell(2, header.index("统一社会信用代码") + 1)
    assert uscc.data_type == "s" and uscc.number_format == "@"  # still a text cell after a save
