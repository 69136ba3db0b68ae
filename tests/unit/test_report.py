"""The monthly audit report: a realistic month renders into one safe, self-contained, deterministic page."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser

import pytest

from quality.report import render_html, write_report
from quality.report_model import (
    BeyondGate,
    CountyVolume,
    CrossRegistrar,
    FailedExpectation,
    GapRow,
    GapSummary,
    LatePush,
    LoadRecon,
    MonthlyMetrics,
    PackageRow,
    PushLateness,
    ReconRow,
    ReconTotal,
    RejectedRow,
    ReplayEntry,
    RuleCount,
    SuiteSummary,
    Timeliness,
    TrendPoint,
    UnfiledRow,
)
from schemas.events import EventType, Registrar, Severity

B, M, S, P, J = (
    Registrar.BIANZHI,
    Registrar.MINZHENG,
    Registrar.SHICHANG,
    Registrar.SHENPI,
    Registrar.JIAOYU,
)

PLANTED_ID = "110105199003071234"
PLANTED_MOBILE = "13812345678"
SCRIPT_NAME = '清城区<script>alert("x")</script>托育园'


def sample_metrics() -> MonthlyMetrics:
    """March 2025 in 清远: five registrars, seven counties, one registrar whose books do not balance.

    Personal data is planted where only free text should be (names, descriptions, the replay trail)
    to prove the report masks it anyway.
    """
    reasons = [
        RuleCount(
            "R-USCC-CHECK", Severity.REJECT, "统一社会信用代码校验位错误", "USCC check digit wrong", 88
        ),
        RuleCount(
            "R-PREFIX",
            Severity.REJECT,
            "登记机关与信用代码前缀不符",
            "Registrar does not match the USCC prefix",
            41,
        ),
        RuleCount(
            "R-DIVISION",
            Severity.REJECT,
            "区划代码未知且无法映射",
            "Division code unknown and not mappable",
            33,
        ),
        RuleCount("R-SCOPE", Severity.REJECT, "经营范围不含托育服务", "Business scope lacks childcare", 28),
        RuleCount(
            "R-REQUIRED",
            Severity.REJECT,
            f"必填字段缺失（联系人 {PLANTED_MOBILE}）",
            "Required field missing",
            25,
        ),
        RuleCount("R-DATE-FUTURE", Severity.REJECT, "登记日期晚于当前日期", "Event date in the future", 7),
    ]
    warnings = [
        RuleCount(
            "W-ADDRESS-LOW",
            Severity.WARN,
            "地址解析置信度低",
            "Address resolved with low confidence",
            19,
        ),
        RuleCount(
            "W-DIVISION-OLD",
            Severity.WARN,
            "区划代码已撤销，已映射至现行代码",
            "Abolished division code mapped forward",
            12,
        ),
        RuleCount(
            "W-USCC-PILOT", Severity.WARN, "早期试点代码未通过校验", "Early pilot code fails the check", 5
        ),
    ]
    counties = [
        ("441802", "清城区", 612, 140, 18, 701, 69),
        ("441803", "清新区", 388, 95, 9, 455, 37),
        ("441821", "佛冈县", 201, 44, 6, 236, 15),
        ("441823", "阳山县", 143, 30, 3, 160, 16),
        ("441881", "英德市", 702, 171, 25, 842, 56),
        ("441882", "连州市", 298, 64, 7, 345, 24),
        ("441826", "连南瑶族自治县", 71, 12, 2, 80, 5),
    ]
    return MonthlyMetrics(
        month="2025-03",
        generated_at=datetime(2025, 4, 1, 1, 30, tzinfo=UTC),
        timezone="Asia/Shanghai",
        reconciliation=[
            ReconRow(B, extracted=42, valid=40, rejected=2, connector_dlq=0),
            ReconRow(M, extracted=318, valid=301, rejected=17, connector_dlq=1),
            ReconRow(S, extracted=2460, valid=2288, rejected=172, connector_dlq=6),
            ReconRow(P, extracted=512, valid=480, rejected=29, connector_dlq=0),  # 3 events lost: ✗
            ReconRow(J, extracted=87, valid=85, rejected=2, connector_dlq=0),
        ],
        volumes_by_registrar={S: 2460, B: 42, M: 318, P: 512, J: 87},
        volumes_by_county=[CountyVolume(*row) for row in counties],
        rejection_reasons=reasons,
        warnings=warnings,
        timeliness=[
            Timeliness.of(None, None, 1083, 977),
            Timeliness.of(B, None, 12, 12),
            Timeliness.of(M, None, 96, 93),
            Timeliness.of(S, None, 801, 702),
            Timeliness.of(P, None, 154, 150),
            Timeliness.of(J, None, 20, 20),
            Timeliness.of(None, "441802", 371, 341),
            Timeliness.of(None, "441803", 154, 150),
            Timeliness.of(None, "441821", 12, 12),
            Timeliness.of(None, "441826", 20, 20),
            Timeliness.of(None, "441881", 526, 454),
        ],
        timeliness_provisional=True,
        push_lateness=[
            PushLateness(None, None, 3194, 2, 1083, 2),
            PushLateness(B, None, 40, 1, 12, 1),
            PushLateness(S, None, 2288, 1, 801, 1),
            PushLateness(None, "441803", 455, 1, 154, 1),
            PushLateness(None, "441821", 236, 1, 12, 1),
        ],
        late_warnings=1,
        timeliness_misses=[
            LatePush(
                "52441881MJL0000003",
                "英德市民政托育园",
                M,
                date(2025, 3, 30),
                datetime(2025, 4, 2, 1, 0, tzinfo=UTC),
                1,
                EventType.ESTABLISHED,
                "441881",
                True,
            )
        ],
        rejected_records=[
            RejectedRow(
                "91441802MA5XXXXX1X",
                "清城区某某托育有限公司",
                S,
                "shichang",
                "441802",
                EventType.ESTABLISHED,
                datetime(2025, 3, 5, 2, 0, tzinfo=UTC),
                (
                    ("R-USCC-CHECK", Severity.REJECT, "统一社会信用代码校验位错误"),
                    ("W-ADDRESS-LOW", Severity.WARN, f"地址解析置信度低（联系人 {PLANTED_MOBILE}）"),
                ),
            ),
            RejectedRow(
                None,
                None,
                M,
                "minzheng",
                None,
                None,
                datetime(2025, 3, 6, 2, 0, tzinfo=UTC),
                (("SOURCE_UNREADABLE", Severity.REJECT, "来源记录无法转换为事件"),),
                connector_dlq=True,
            ),
        ],
        unfiled=[
            UnfiledRow(
                "441881", "52441881MJL0000002", "英德市小星星托育中心", date(2024, 11, 20), 131, "MINZHENG"
            ),
        ],
        beyond_gate=BeyondGate(
            valid=3194,
            load=LoadRecon(
                7, "load-2025-03-ab12", "9f" * 32, 3194, 3190, 4, 2, datetime(2025, 4, 1, 1, tzinfo=UTC)
            ),
            stored=3190,
            packages=[
                PackageRow(
                    "441802",
                    "清城区",
                    1500,
                    0,
                    "a1" * 32,
                    "b1" * 32,
                    "c1" * 32,
                    datetime(2025, 4, 1, 2, tzinfo=UTC),
                ),
                PackageRow(
                    "441881",
                    "英德市",
                    1690,
                    2,
                    "a2" * 32,
                    "b2" * 32,
                    "c2" * 32,
                    datetime(2025, 4, 1, 2, tzinfo=UTC),
                ),
            ],
        ),
        cross_registrar=[
            CrossRegistrar("91441802MA5XXXXX1Q", SCRIPT_NAME, (S, P), "441802"),
            CrossRegistrar(
                "52441881MJL0000002",
                f"英德市小星星托育中心（法人身份证{PLANTED_ID}）",
                (M, J),
                "441881",
            ),
        ],
        late_pushes=[
            LatePush(
                "92441803MA4W00001K",
                f"清新区家庭托育点（电话{PLANTED_MOBILE}）",
                S,
                date(2025, 1, 20),
                datetime(2025, 3, 3, 2, 0, tzinfo=UTC),
                2,
                EventType.ESTABLISHED,
                "441803",
                False,
            ),
            LatePush(
                "12441821455000001T",
                "佛冈县机关幼儿园托班",
                B,
                date(2025, 2, 27),
                datetime(2025, 3, 4, 9, 15, tzinfo=UTC),
                1,
                EventType.CHILDCARE_CLASS_ADDED,
                "441821",
                True,
            ),
        ],
        trend=[
            TrendPoint("2025-01", 2911, 2702, 209, 0.91, 1.0),
            TrendPoint("2025-02", 2687, 2493, 194, 0.94, 0.75),
            TrendPoint("2025-03", 3419, 3194, 222, 0.902, 2 / 3, 2 / 3194, True),
        ],
        gx_suites=[
            SuiteSummary("gate_batch", True, 42, 0, "data_docs/validations/gate_batch/2025-03.html"),
            SuiteSummary(
                "monthly_duplicates", True, 6, 0, "data_docs/validations/monthly_duplicates/2025-03.html"
            ),
            SuiteSummary(
                "monthly_timeliness",
                False,
                10,
                1,
                "data_docs/validations/monthly_timeliness/2025-03.html",
                failures=[
                    FailedExpectation(
                        "monthly_timeliness",
                        "expect_uscc_to_come_from_single_registrar",
                        "uscc,registrar",
                        None,
                        1083,
                        2,
                        ["91441802MA5XXXXX1Q (SHENPI、SHICHANG)", "52441881MJL0000002 (JIAOYU、MINZHENG)"],
                    )
                ],
            ),
        ],
        dlq_replays=[
            ReplayEntry(
                "ops-zhang",
                datetime(2025, 3, 12, 6, 40, tzinfo=UTC),
                f"重放 R-DIVISION 拒收记录（区划表更新后）；联系人 {PLANTED_MOBILE}",
                31,
            ),
            ReplayEntry(
                "ops-li",
                datetime(2025, 3, 20, 8, 5, tzinfo=UTC),
                f"重放单条记录，法人证件 {PLANTED_ID} 已更正",
                1,
            ),
        ],
        filing_gap=GapSummary(
            [
                GapRow("441802", 23, 87, 2),
                GapRow("441881", 31, 140, 0),
                GapRow("441826", 4, 35, 1),
            ]
        ),
    )


class _Page(HTMLParser):
    """Checks nesting and collects tables (by id) as rows of cell texts."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(sample_metrics())


def test_html_parses_and_is_well_nested(html):
    page = parse(html)
    assert page.errors == []
    assert page.stack == []
    assert html.startswith("<!DOCTYPE html>")
    assert page.tags.count("svg") == 6  # volumes, verdicts, timeliness, rejections, two trend charts


def test_self_contained_no_external_references(html):
    lowered = html.lower()
    for needle in ("<script", "http://", "https://", "src=", "<link", "@import", "url(", "@font-face"):
        assert needle not in lowered, needle
    assert "default-src 'none'" in html  # the page may not load anything, even if a value slipped in
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs
    assert all(h.startswith(("#", "data_docs/", "audit-2025-03-")) for h in hrefs)


def test_summary_and_reconciliation_numbers(html):
    page = parse(html)
    text = " ".join("".join(page.text).split())
    for number in ("3,419", "3,194", "222", "2,460", "90.2%", "6.5%"):
        assert number in text
    assert "R-USCC-CHECK" in text and "统一社会信用代码校验位错误" in text  # biggest reason
    assert "✗ 1 个登记机关不平衡" in text
    assert "抽取 = 有效 + 拒收" in text and "extracted = valid + rejected" in text

    rows = {r[0]: r for r in page.tables["recon-table"][1:]}
    shenpi = rows["行政审批服务局Administrative approval"]
    assert shenpi[1:9] == ["512", "≠", "480", "+", "29", "✗", "+3", "0"]
    shichang = rows["市场监管部门Market regulation"]
    assert shichang[1:9] == ["2,460", "=", "2,288", "+", "172", "✓", "0", "6"]
    total = rows["合计 Total"]
    assert total[1:9] == ["3,419", "≠", "3,194", "+", "222", "✗", "+3", "7"]


def test_tables_hold_the_month(html):
    page = parse(html)
    counties = page.tables["county-table"]
    assert counties[5] == ["441881", "英德市", "702", "171", "25", "842", "56", "6.2%"]
    assert counties[-1][0].startswith("合计 Total（7 个县区")

    timeliness = page.tables["timeliness-table"][1:]
    assert [r[0] for r in timeliness][:3] == [
        "合计 all",
        "机构编制部门Staffing office",
        "民政部门Civil affairs",
    ]
    shichang_total = next(r for r in timeliness if r[0].startswith("市场监管"))
    assert shichang_total[1:] == ["801", "702", "99", "87.6%", "✗"]
    assert ["英德市 441881", "526", "454", "72", "86.3%", "✗"] in timeliness  # per county, all registrars
    lateness = page.tables["lateness-table"][1:]
    assert lateness[0] == ["合计 all", "3,194", "2", "0.1%", "1,083", "2", "✓"]

    reasons = page.tables["rejection-table"]
    assert reasons[1][:5] == [
        "R-USCC-CHECK",
        "拒收reject",
        "统一社会信用代码校验位错误",
        "USCC check digit wrong",
        "88",
    ]
    assert reasons[-1][-2] == "222"

    gx = page.tables["gx-table"]
    assert [r[1] for r in gx[1:]] == ["✓", "✓", "✗"]
    assert 'href="data_docs/validations/monthly_timeliness/2025-03.html"' in html

    trend = page.tables["trend-table"]
    assert [r[0] for r in trend[1:]] == ["2025-01", "2025-02", "2025-03 (本月 this month)"]
    assert trend[3][5:8] == ["90.2%*", "0.1%", "66.7%"]  # (a) provisional, (b), GX
    assert trend[1][5:7] == ["91.0%", "—"]
    assert page.tables["warning-table"][-1][-2] == "36"
    assert page.tables["gap-table"][-1] == ["合计 Total", "58", "140", "3"]
    assert page.tables["cross-table"][1][2] == "市场监管部门、行政审批服务局"
    assert "较上月 vs 2025-02: +27.2%" in "".join(page.text)


def test_charts_show_threshold_and_failing_registrar(html):
    chart = re.search(r'<svg id="chart-timeliness".*?</svg>', html, re.S)
    assert chart is not None
    assert 'class="threshold"' in chart.group(0)
    assert "阈值 threshold 95%" in chart.group(0)
    assert chart.group(0).count('class="c-bad"') == 1  # only 市场监管 (87.6%) is below 95%
    assert len(re.findall(r'<text[^>]*class="label"', chart.group(0))) == 5  # registrar rows only
    trend = re.search(r'<svg id="chart-trend-counts".*?</svg>', html, re.S)
    assert trend is not None and trend.group(0).count("<polyline") == 3


def test_script_in_a_name_is_escaped(html):
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_personal_data_is_masked_wherever_it_was_planted(html):
    assert PLANTED_ID not in html
    assert PLANTED_MOBILE not in html
    assert "110105********1234" in html
    assert "138****5678" in html
    assert re.search(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])", html) is None  # no 18-digit ID
    assert re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", html) is None  # no 11-digit mobile


def test_unmasked_data_in_every_free_text_field_is_masked():
    metrics = sample_metrics()
    leak = f"{PLANTED_ID} {PLANTED_MOBILE}"
    metrics = dataclasses.replace(
        metrics,
        volumes_by_county=[dataclasses.replace(metrics.volumes_by_county[0], county_name=leak)],
        warnings=[dataclasses.replace(metrics.warnings[0], description_en=leak, rule_id=leak)],
        gx_suites=[dataclasses.replace(metrics.gx_suites[0], suite=leak)],
        dlq_replays=[dataclasses.replace(metrics.dlq_replays[0], who=leak)],
    )
    html = render_html(metrics)
    assert PLANTED_ID not in html
    assert PLANTED_MOBILE not in html


def test_output_is_deterministic():
    first = render_html(sample_metrics())
    assert render_html(sample_metrics()) == first
    reordered = dataclasses.replace(
        sample_metrics(), volumes_by_registrar={B: 42, M: 318, S: 2460, P: 512, J: 87}
    )
    assert render_html(reordered) == first  # the registrar map renders in registrar order


def test_write_report_writes_one_file(tmp_path, html):
    path = write_report(sample_metrics(), tmp_path / "reports")
    assert path == tmp_path / "reports" / "audit-2025-03.html"
    assert path.read_text(encoding="utf-8") == html
    assert sorted(p.name for p in path.parent.iterdir()) == ["audit-2025-03.html"]
    assert path.stat().st_mode & 0o777 == 0o644  # like the packages (mkstemp alone gives 0600)
    write_report(sample_metrics(), tmp_path / "reports")  # re-running a month replaces its report
    assert sorted(p.name for p in path.parent.iterdir()) == ["audit-2025-03.html"]


def test_a_quiet_month_renders_with_empty_sections():
    metrics = MonthlyMetrics(
        month="2025-04",
        generated_at=datetime(2025, 5, 1, tzinfo=UTC),
        timezone="Asia/Shanghai",
        reconciliation=[ReconRow(B, 0, 0, 0)],
    )
    html = render_html(metrics)
    page = parse(html)
    assert page.errors == []
    assert "✓ 全部平衡" not in html  # 0 = 0 + 0 is not a balanced month
    assert '<div class="v small muted" id="sum-recon">本月无数据</div>' in html
    assert "本月无数据 / no data this month" in html
    assert page.tables["recon-table"][-1][6] == "—"
    assert "备案数据尚未接入" in html  # no filing data: said, not shown as zeros
    assert "无数据 / no data" in html
    assert page.tables["late-table"][1] == ["无 / none this month"]


def test_reconciliation_total_does_not_let_errors_cancel_out():
    rows = [ReconRow(B, 10, 7, 0), ReconRow(M, 10, 13, 0)]  # 3 lost, 3 double-counted
    total = ReconTotal.of(rows)
    assert total.difference == 0
    assert not total.balanced
    assert total.unbalanced_rows == 2


def test_model_derives_summary_values():
    metrics = sample_metrics()
    assert metrics.total.extracted == 3419
    assert metrics.rejected_share == pytest.approx(222 / 3419)
    assert metrics.timeliness_share == pytest.approx(977 / 1083)
    assert metrics.push_total is not None and metrics.push_total.late_share == pytest.approx(2 / 3194)
    assert [p.uscc for p in metrics.late_flag_mismatches] == ["92441803MA4W00001K"]
    assert not metrics.empty
    assert metrics.top_rejection is not None and metrics.top_rejection.rule_id == "R-USCC-CHECK"
    assert metrics.previous is not None and metrics.previous.month == "2025-02"
    assert Timeliness.of(B, None, 0, 0).share is None
    assert metrics.filing_gap is not None and metrics.filing_gap.oldest_days == 140


def test_builders_for_catalog_rules_and_data_docs_links(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Rule:  # the shape of a rule-catalog entry
        id: str
        severity: Severity
        description_zh: str
        description_en: str

    counted = RuleCount.of(Rule("R-X", Severity.WARN, "说明", "Description"), 4)
    assert counted == RuleCount("R-X", Severity.WARN, "说明", "Description", 4)

    page = tmp_path / "gx" / "data docs" / "validations" / "gate#1.html"
    href = SuiteSummary.href_to(page, tmp_path / "reports")
    assert href == "../gx/data%20docs/validations/gate%231.html"
    assert SuiteSummary("gate", True, 1, 0, href).data_docs_href == href


@pytest.mark.parametrize(
    "build",
    [
        lambda: ReconRow(B, -1, 0, 0),
        lambda: Timeliness(B, None, 10, 11, 1.1),
        lambda: Timeliness.of(B, None, 10, 11),
        lambda: TrendPoint("2025-13", 1, 1, 0, None, None),
        lambda: SuiteSummary("s", True, 1, 0, "https://example.org/docs.html"),
        lambda: SuiteSummary("s", True, 1, 0, "/var/gx/docs.html"),
        lambda: SuiteSummary("s", True, 1, 0, "javascript:alert(1)"),
        lambda: MonthlyMetrics(
            month="2025-03", generated_at=datetime(2025, 4, 1), timezone="UTC", reconciliation=[]
        ),
        lambda: MonthlyMetrics(
            month="2025-3", generated_at=datetime(2025, 4, 1, tzinfo=UTC), timezone="UTC", reconciliation=[]
        ),
    ],
)
def test_model_rejects_malformed_values(build):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message; the type is the contract
        build()


def test_timeliness_measures_are_labelled_and_the_provisional_one_says_so(html):
    page = parse(html)
    text = " ".join("".join(page.text).split())
    assert "Of the registrations dated in 2025-03, the share pushed within 2025-03" in text
    assert "Of the pushes received in 2025-03, the share that was late" in text
    assert 'id="timeliness-provisional"' in html and "暂定 / provisional" in text
    final = render_html(dataclasses.replace(sample_metrics(), timeliness_provisional=False))
    assert 'id="timeliness-provisional"' not in final
    # the late counts are explained side by side: (b), the load manifest, the packages, LATE_PUSH
    assert '<b id="late-count-b">2</b>' in html and '<b id="late-warnings">1</b>' in html
    assert "manifest late: 2" in text and "packages' flags: 2" in text


def test_beyond_the_gate_and_packages_with_hashes(html):
    page = parse(html)
    beyond = page.tables["beyond-table"][1:]
    assert beyond[1][1:3] == ["3,194", "✓"]  # the load read every valid record
    assert "manifest #7" in beyond[1][3] and "9f9f" in beyond[1][3]
    assert beyond[3][1:3] == ["3,190", "✓"]  # packaged rows = stored events
    packages = page.tables["packages-table"]
    assert packages[1][:3] == ["清城区 441802", "1,500", "0"] and packages[1][3] == "a1" * 32


def test_appendix_lists_records_and_links_the_files(html):
    page = parse(html)
    tables = [rows for name, rows in page.tables.items() if name.startswith("table-")]
    by_rule = [rows for rows in tables if rows and rows[0][0] == "统一社会信用代码USCC" and len(rows[0]) == 6]
    assert len(by_rule) == 2  # one table per rule: R-USCC-CHECK and SOURCE_UNREADABLE
    uscc_row = by_rule[0][1]
    assert (
        uscc_row[0] == "91441802MA5XXXXX1X"
        and "R-USCC-CHECK" in uscc_row[5]
        and "W-ADDRESS-LOW" in uscc_row[5]
    )
    assert PLANTED_MOBILE not in html
    assert page.tables["misses-table"][1][0] == "52441881MJL0000003"
    assert page.tables["unfiled-table"][1][1:5] == [
        "52441881MJL0000002",
        "英德市小星星托育中心",
        "2024-11-20",
        "131",
    ]
    for name in ("audit-2025-03-rejected.csv", "audit-2025-03-unfiled.csv", "audit-2025-03-appendix.xlsx"):
        assert f'href="{name}"' in html


def test_gx_failures_are_in_the_report_with_the_usccs(html):
    page = parse(html)
    failures = page.tables["gx-failures-monthly_timeliness"]
    assert failures[1][0] == "expect_uscc_to_come_from_single_registrar"
    assert failures[1][2] == "2 / 1,083"
    assert "91441802MA5XXXXX1Q (SHENPI、SHICHANG)" in failures[1][3]


def test_unknown_registrar_gets_its_own_row():
    metrics = dataclasses.replace(
        sample_metrics(),
        reconciliation=[*sample_metrics().reconciliation, ReconRow(None, 3, 0, 0, 0, ("legacy-ftp",))],
    )
    page = parse(render_html(metrics))
    row = page.tables["recon-table"][-2]
    assert row[0].startswith("未知登记机关") and "legacy-ftp" in row[0]
    assert row[1:8] == ["3", "≠", "0", "+", "0", "✗", "+3"]
