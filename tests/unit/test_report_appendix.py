"""The report's appendix files: the HTML's rows as CSV and XLSX, codes kept text, masked, 0644."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
from pathlib import Path

from openpyxl import load_workbook

from quality.report import APPENDIX_TABLES
from quality.report_model import RejectedRow
from regsync.reporting.appendix import appendix_tables, write_appendices
from schemas.events import Severity
from sink.export_rows import unwrap_csv_text

ROOT = Path(__file__).resolve().parents[2]


def _sample():
    spec = importlib.util.spec_from_file_location("report_sample", ROOT / "tests" / "unit" / "test_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_table_is_written_as_csv_and_as_a_sheet(tmp_path):
    sample = _sample()
    metrics = sample.sample_metrics()
    written = write_appendices(metrics, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        [f"audit-2025-03-{key}.csv" for key in APPENDIX_TABLES] + ["audit-2025-03-appendix.xlsx"]
    )
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in written)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind

    with (tmp_path / "audit-2025-03-rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["拒收规则", "统一社会信用代码"]
    assert rows[1][1] == '="91441802MA5XXXXX1X"' and unwrap_csv_text(rows[1][1]) == "91441802MA5XXXXX1X"
    assert "R-USCC-CHECK" in rows[1][-1] and "W-ADDRESS-LOW" in rows[1][-1]  # every violation
    assert sample.PLANTED_MOBILE not in (tmp_path / "audit-2025-03-rejected.csv").read_text(
        encoding="utf-8-sig"
    )

    book = load_workbook(tmp_path / "audit-2025-03-appendix.xlsx")
    assert book.sheetnames == [title for title, _ in APPENDIX_TABLES.values()]
    uscc = book["拒收记录"]["B2"]
    assert uscc.value == "91441802MA5XXXXX1X" and uscc.data_type == "s" and uscc.number_format == "@"
    late = book["逾期推送"]
    assert [c.value for c in late[2]][:2] == ["92441803MA4W00001K", "清新区家庭托育点（电话138****5678）"]
    assert book["县区数据包"].max_row == 1 + len(metrics.beyond_gate.packages)
    assert book["登记未备案"]["E2"].value == 131


def test_all_digit_uscc_stays_text_and_formulas_are_defused(tmp_path):
    metrics = _sample().sample_metrics()
    row = RejectedRow(
        "914403001922038216",
        '=HYPERLINK("x")',
        None,
        "legacy",
        "440300",
        None,
        metrics.generated_at,
        (("R", Severity.REJECT, "+1 坏"),),
    )
    metrics = dataclasses.replace(metrics, rejected_records=[row])
    write_appendices(metrics, tmp_path)
    with (tmp_path / "audit-2025-03-rejected.csv").open(encoding="utf-8-sig", newline="") as handle:
        line = list(csv.reader(handle))[1]
    assert line[1:4] == ['="914403001922038216"', '\'=HYPERLINK("x")', "未知登记机关"]
    cell = load_workbook(tmp_path / "audit-2025-03-appendix.xlsx")["拒收记录"]["B2"]
    assert cell.value == "914403001922038216" and cell.data_type == "s"
    assert appendix_tables(metrics)["rejected"][0]["violations"] == "R：+1 坏"
