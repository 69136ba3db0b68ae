"""County push packages: complete, hashed, masked, Excel-friendly and byte-for-byte repeatable."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import UTC, date, datetime

import openpyxl
import pytest
import sqlalchemy as sa

from schemas.events import EventType, FieldChange, InstitutionStatus, JurisdictionMove, LegalRepresentative
from sink import export_rows
from sink.export_rows import CODE_COLUMNS, COLUMNS, csv_row, unwrap_csv_text
from sink.exports import export_month
from sink.loader import PositionedEvent, load_month
from sink.models import county_pushes
from sink.store import create_engine, upgrade
from sink.synthetic import make_event, uscc_for

FULL_ID = "110105199003071234"
FULL_PHONE = "13912345678"
# An unmasked 18-digit resident ID: region, a 19xx/20xx birth date, sequence, check.
UNMASKED_ID = re.compile(
    r"(?<![0-9A-Za-z])\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![0-9A-Za-z])"
)


def pushed(day):
    return int(datetime(2025, 3, day, 3, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    eng = create_engine(url)
    leaky = LegalRepresentative("赵六", FULL_ID, True, FULL_PHONE)  # a connector that forgot to mask
    mover = uscc_for(3)
    events = [
        make_event(uscc_for(1), EventType.ESTABLISHED, date(2025, 3, 2), county="441802"),
        make_event(
            uscc_for(2),
            EventType.ESTABLISHED,
            date(2025, 2, 20),
            county="441802",
            rep=leaky,
            address=f"清城区某路1号（联系人身份证{FULL_ID}，电话{FULL_PHONE}）",
        ),
        make_event(
            uscc_for(2),
            EventType.CHANGED,
            date(2025, 3, 5),
            county="441802",
            version=2,
            rep=leaky,
            changed=[FieldChange("legal_representative.id_number", "110105198001011111", FULL_ID)],
        ),
        make_event(
            mover,
            EventType.MOVED_OUT,
            date(2025, 3, 8),
            county="441802",
            version=2,
            status=InstitutionStatus.MOVED_OUT,
            move=JurisdictionMove("441802", "441803"),
        ),
        make_event(
            mover,
            EventType.MOVED_IN,
            date(2025, 3, 8),
            county="441803",
            version=3,
            move=JurisdictionMove("441802", "441803"),
        ),
        make_event(uscc_for(4), EventType.ESTABLISHED, date(2025, 3, 9), county=None),
        make_event(
            uscc_for(5), EventType.ESTABLISHED, date(2025, 3, 9), county="441803", name='=HYPERLINK("x")'
        ),
    ]
    records = [PositionedEvent(0, i, pushed(10 + i), e) for i, e in enumerate(events)]
    load_month(
        eng, month="2025-03", topic="t", positioned=records, offset_ranges={0: (0, len(records))}, run_id="r"
    )
    yield eng
    eng.dispose()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def all_text(package):
    """Everything a bureau receives, as text: CSV, manifest, and every XML part of the workbook."""
    texts = [package.files[n].read_text(encoding="utf-8-sig") for n in ("registrations.csv", "manifest.json")]
    with zipfile.ZipFile(package.files["registrations.xlsx"]) as z:
        texts += [z.read(name).decode("utf-8") for name in z.namelist()]
    return "\n".join(texts)


def test_packages_per_county_with_files_and_manifest(engine, tmp_path):
    packages = export_month(engine, "2025-03", tmp_path / "out")
    assert [(p.county_code, p.county_name) for p in packages] == [
        ("000000", "县区未定位"),
        ("441802", "清城区"),
        ("441803", "清新区"),
    ]
    by_code = {p.county_code: p for p in packages}
    assert by_code["441802"].counts_by_type == {"CHANGED": 1, "ESTABLISHED": 2, "MOVED_OUT": 1}
    assert by_code["441803"].counts_by_type == {"ESTABLISHED": 1, "MOVED_IN": 1}
    assert by_code["441802"].late == 1
    for package in packages:
        assert (
            package.directory == tmp_path / "out" / "2025-03" / f"{package.county_code}_{package.county_name}"
        )
        manifest = json.loads(package.files["manifest.json"].read_text(encoding="utf-8"))
        assert manifest["month"] == "2025-03" and manifest["county_code"] == package.county_code
        assert manifest["rows"] == package.rows == sum(manifest["rows_by_event_type"].values())
        assert manifest["late"] == package.late
        for name in ("registrations.csv", "registrations.xlsx"):
            assert manifest["files"][name]["sha256"] == sha256(package.files[name]) == package.sha256[name]
        assert sha256(package.files["manifest.json"]) == package.sha256["manifest.json"]
        assert not list(package.directory.glob("*.tmp"))
    with engine.connect() as conn:
        pushes = conn.execute(sa.select(county_pushes).order_by(county_pushes.c.county_code)).mappings().all()
    assert [(p["county_code"], p["rows"], p["csv_sha256"]) for p in pushes] == [
        (p.county_code, p.rows, p.sha256["registrations.csv"]) for p in packages
    ]


def test_csv_is_excel_friendly(engine, tmp_path):
    package = {p.county_code: p for p in export_month(engine, "2025-03", tmp_path)}["441802"]
    raw = package.files["registrations.csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 4
    assert rows[0]["统一社会信用代码"] == f'="{uscc_for(2)}"'  # code columns stay text in a spreadsheet
    assert unwrap_csv_text(rows[0]["统一社会信用代码"]) == uscc_for(2)
    assert rows[0]["逾期推送"] == "是"  # sorted by event date
    assert [r["事件类型"] for r in rows] == ["设立", "设立", "变更", "迁出"]
    assert rows[-1]["迁入地区划代码"] == '="441803"' and rows[-1]["登记状态"] == "迁出"
    assert rows[0]["推送时间"] == "2025-03-11 11:00:00"  # Asia/Shanghai


def test_xlsx_has_a_frozen_chinese_header_and_no_formulas(engine, tmp_path):
    package = {p.county_code: p for p in export_month(engine, "2025-03", tmp_path)}["441803"]
    book = openpyxl.load_workbook(package.files["registrations.xlsx"])
    sheet = book.active
    assert sheet.freeze_panes == "A2"
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["统一社会信用代码", "机构名称", "事件类型"] and sheet["A1"].font.b
    assert sheet.column_dimensions["B"].width == 36
    names = [row[1].value for row in sheet.iter_rows(min_row=2)]
    assert '\'=HYPERLINK("x")' in names
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    assert isinstance(sheet["D2"].value, date)  # a real date cell (openpyxl reads it as datetime)


def test_no_full_id_or_phone_in_any_file(engine, tmp_path):
    for package in export_month(engine, "2025-03", tmp_path):
        text = all_text(package)
        assert FULL_ID not in text and FULL_PHONE not in text
        assert not UNMASKED_ID.search(text), UNMASKED_ID.search(text)
    with engine.connect() as conn:  # nor at rest in the store
        stored = " ".join(
            str(tuple(r))
            for t in ("institution_events", "institutions")
            for r in conn.execute(sa.text(f"SELECT * FROM {t}"))
        )
    assert FULL_ID not in stored and FULL_PHONE not in stored
    qingcheng = (tmp_path / "2025-03" / "441802_清城区" / "registrations.csv").read_text(encoding="utf-8-sig")
    assert "110105********1234" in qingcheng and "139****5678" in qingcheng and "赵六" in qingcheng


def test_reexport_is_byte_identical(engine, tmp_path):
    first = export_month(engine, "2025-03", tmp_path / "a")
    second = export_month(engine, "2025-03", tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.files["registrations.csv"].read_bytes() == b.files["registrations.csv"].read_bytes()
        assert a.sha256["registrations.xlsx"] == b.sha256["registrations.xlsx"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(county_pushes)).scalar_one() == 6


def test_month_without_events_exports_nothing(engine, tmp_path):
    assert export_month(engine, "2025-01", tmp_path) == []


# ------------------------------------------------------------------ code columns stay text (issue 15 §6)

DIGIT_USCC = "914403001922038216"  # legal and common: every character a digit


@pytest.fixture
def digits_engine(tmp_path):
    """A month whose codes are all digits: the USCC, the county, the move's from/to codes."""
    url = f"sqlite:///{tmp_path / 'digits.db'}"
    upgrade(url)
    eng = create_engine(url)
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
        make_event(uscc_for(9), EventType.ESTABLISHED, date(2025, 3, 3), county="370103", name="=1+2"),
    ]
    records = [PositionedEvent(0, i, pushed(10 + i), e) for i, e in enumerate(events)]
    load_month(
        eng, month="2025-03", topic="t", positioned=records, offset_ranges={0: (0, len(records))}, run_id="r"
    )
    yield eng
    eng.dispose()


def csv_rows(package):
    return list(csv.reader(io.StringIO(package.files["registrations.csv"].read_text(encoding="utf-8-sig"))))


def test_csv_code_columns_are_written_as_formula_text(digits_engine, tmp_path):
    (package,) = export_month(digits_engine, "2025-03", tmp_path)
    header, first, second, third = csv_rows(package)
    col = {name: i for i, name in enumerate(header)}
    assert first[col["统一社会信用代码"]] == f'="{DIGIT_USCC}"'
    assert first[col["县级行政区划代码"]] == '="370103"'
    assert third[col["迁出地区划代码"]] == '="370103"' and third[col["迁入地区划代码"]] == '="370102"'
    assert first[col["迁出地区划代码"]] == ""  # empty stays empty, not =""
    assert first[col["登记(核准)日期"]] == "2025-03-02"  # other columns untouched
    assert second[col["机构名称"]] == "'=1+2"  # formula injection from the source is still defused
    # Machine readers get the plain value back with one documented call.
    assert unwrap_csv_text(first[col["统一社会信用代码"]]) == DIGIT_USCC
    assert unwrap_csv_text(second[col["机构名称"]]) == "'=1+2"
    manifest = json.loads(package.files["manifest.json"].read_text(encoding="utf-8"))
    assert manifest["csv_text_columns"]["columns"] == list(CODE_COLUMNS)
    assert '="' in manifest["csv_text_columns"]["form"]


@pytest.mark.parametrize(
    "value", ['=HYPERLINK("http://x")', '91"+1', "@SUM(A1)", "-370103", "37 0103", "", None]
)
def test_code_cells_that_are_not_plain_codes_are_never_wrapped(value):
    cells = [None] * len(COLUMNS)
    index = [c.header for c in COLUMNS].index("统一社会信用代码")
    doc_value = export_rows._defuse(value)
    cells[index] = doc_value
    written = csv_row(cells)[index]
    assert not written.startswith('="'), written
    if value and value[0] in "=+-@":
        assert written.startswith("'")


def test_xlsx_code_cells_are_text_formatted_as_text(digits_engine, tmp_path):
    (package,) = export_month(digits_engine, "2025-03", tmp_path)
    sheet = openpyxl.load_workbook(package.files["registrations.xlsx"]).active
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        for name in ("统一社会信用代码", "县级行政区划代码"):
            cell = row[header.index(name)]
            assert cell.data_type == "s" and cell.number_format == "@", (name, cell.value)
            assert isinstance(cell.value, str)
        assert row[header.index("托位数")].data_type == "n"  # real numbers stay numbers
    assert sheet.cell(2, header.index("统一社会信用代码") + 1).value == DIGIT_USCC
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
