"""Months of two real registrar simulators through the real stack, then the suites and the audit report.

Everything goes through ``regsync.jobs`` with an explicit ``Settings`` (no local ``stack up`` needed).
The report's reconciliation is checked against counts the test makes itself by scanning the whole
topics and cutting months by each record's own timestamp — not through ``month_window``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.base import InvalidRecord
from quality import gx_results
from quality.expectations import DEFAULT_EXEMPT_REGISTRARS
from quality.month_records import EXEMPT_FROM_DUPLICATES
from regsync import jobs
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.reporting import build as report_build
from regsync.settings import Settings, StackSettings
from regsync.sources import for_simulator
from regsync.stages.dlq import DlqFilter, replay
from schemas.errors import EXIT_CONFIG
from schemas.events import Registrar, RegistrationEvent, RejectedRecord, Severity

pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray that drops timezone")

TZ = ZoneInfo("Asia/Shanghai")
MONTHS = ("2026-01", "2026-02", "2026-03")
SOURCES = {"bianzhi": Registrar.BIANZHI, "shichang": Registrar.SHICHANG, "shenpi": Registrar.SHENPI}
DUPLICATES = "expect_uscc_to_come_from_single_registrar"
ID18 = re.compile(
    r"(?<![0-9A-Z])\d{6}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dX](?![0-9A-Z])"
)


class _WithUnreadableRow:
    """A real connector whose first batch also carries one row that cannot become an event."""

    def __init__(self, inner):
        self.inner = inner
        self.spec = inner.spec

    def batches(self, state, ctx):
        for i, batch in enumerate(self.inner.batches(state, ctx)):
            if i == 0:
                batch.invalid.append(InvalidRecord("BROKEN-1", b'{"hzrq": "20261345"}', "hzrq is not a date"))
            yield batch


def _import_filings(settings: Settings, path: Path, world) -> None:
    from sink.filing import import_filings

    filed = next(r.snapshot.uscc for r in world.records if r.registrar is Registrar.BIANZHI and not r.faults)
    path.write_text(
        "统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态\n"
        f"{filed},BA0001,2026-03-05,,已备案\n"
        "52441800MJ0000001X,BA0002,2026-03-06,441802,已备案\n",
        encoding="utf-8",
    )
    engine = sa.create_engine(settings.database_url.get_secret_value())
    try:
        assert import_filings(engine, path).inserted == 2
    finally:
        engine.dispose()


def _first_of_next(month: str) -> datetime:
    year, mon = (int(x) for x in month.split("-"))
    return datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=TZ)


def _month_of(timestamp_ms: int) -> str:
    return datetime.fromtimestamp(timestamp_ms / 1000, TZ).strftime("%Y-%m")


def _independent_counts(settings: Settings, topics: Topics) -> dict[str, dict[Registrar, Counter]]:
    """month → registrar → extracted / valid / rejected / connector_dlq, plus rule counts per month."""
    codecs = bus.load_codecs(settings.registry_url, topics)
    counts: dict[str, dict[Registrar, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for record in bus.scan(settings.kafka_bootstrap, topics.raw, {}):
        event = RegistrationEvent.from_avro(codecs.raw.decode(record.value))
        counts[_month_of(record.timestamp)][event.registrar]["extracted"] += 1
    for record in bus.scan(settings.kafka_bootstrap, topics.valid, {}):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        counts[_month_of(record.timestamp)][event.registrar]["valid"] += 1
    for record in bus.scan(settings.kafka_bootstrap, topics.rejected, {}):
        rejected = RejectedRecord.from_avro(codecs.rejected.decode(record.value))
        month = _month_of(record.timestamp)
        if rejected.event is None:
            registrar = SOURCES[bus.header(record, bus.HEADER_SOURCE)]
            counts[month][registrar]["connector_dlq"] += 1
            counts[month][registrar]["rule:SOURCE_UNREADABLE"] += 1
            continue
        counts[month][rejected.event.registrar]["rejected"] += 1
        for rule_id in {v.rule_id for v in rejected.violations if v.severity is Severity.REJECT}:
            counts[month][rejected.event.registrar][f"rule:{rule_id}"] += 1
    return counts


def _dated_registrations(settings: Settings, topics: Topics) -> dict[str, tuple[int, int]]:
    """month → (pushed within the month, registrations dated in it), from a scan of the valid topic."""
    from quality.month_records import REGISTRATION_TYPES

    codecs = bus.load_codecs(settings.registry_url, topics)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for record in bus.scan(settings.kafka_bootstrap, topics.valid, {}):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        if event.event_type not in REGISTRATION_TYPES:
            continue
        dated = event.event_date.strftime("%Y-%m")
        counts[dated][1] += 1
        counts[dated][0] += _month_of(record.timestamp) == dated
    return {m: (c[0], c[1]) for m, c in counts.items()}


@pytest.fixture
def settings(stack, uid, database_url, tmp_path, as_components) -> Settings:
    as_components(Topics(prefix=f"t{uid}."))
    return Settings(
        kafka_bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topic_prefix=f"t{uid}.",
        output_dir=tmp_path / "out",
        stack=StackSettings(state_dir=tmp_path / "no-local-stack"),
    )


def test_months_reconcile_and_the_report_is_safe(settings, tmp_path, monkeypatch):
    from simulators.bianzhi_db import BianzhiDb
    from simulators.shenpi_db import ShenpiDb
    from simulators.shichang_files import ShichangFiles
    from simulators.world import FaultRates, WorldConfig, build_world

    topics = Topics(prefix=settings.topic_prefix)
    jobs.prepare(settings)
    # More faults than the documented defaults, so a small world still rejects, delays and duplicates.
    faults = FaultRates(bad_check_digit=0.08, unknown_division=0.08, late=0.2, duplicate_registrar=0.5)
    world = build_world(WorldConfig(months=MONTHS, institutions_per_month=24, seed=7, faults=faults))
    sims = {
        "bianzhi": BianzhiDb(world, tmp_path / "sim" / "bianzhi"),
        "shichang": ShichangFiles(world, tmp_path / "sim" / "shichang"),
        "shenpi": ShenpiDb(world, tmp_path / "sim" / "shenpi"),
    }
    outcomes, reports, metrics, packages = {}, {}, {}, {}
    built = []  # what jobs.report rendered, captured rather than built a second time
    build = report_build.build_metrics
    monkeypatch.setattr(report_build, "build_metrics", lambda **kw: built.append(build(**kw)) or built[-1])
    try:
        for i, month in enumerate(MONTHS):
            first_of_next = _first_of_next(month)
            if i == 1:
                # Mid-month, an operator replays January's rejections: pushed (and reported) in February.
                replayed = replay(
                    bootstrap=settings.kafka_bootstrap,
                    registry_url=settings.registry_url,
                    database_url=settings.database_url.get_secret_value(),
                    topics=topics,
                    flt=DlqFilter(month=MONTHS[0]),
                    as_of=datetime(2026, 2, 10, 10, tzinfo=TZ),
                    dry_run=False,
                    who="auditor-test",
                    reason="division table updated",
                )
            extract_at = first_of_next - timedelta(hours=6)
            for name, sim in sims.items():
                sim.publish_until(extract_at)
                connector = for_simulator(sim)
                if (i, name) == (0, "bianzhi"):
                    connector = _WithUnreadableRow(connector)
                jobs.extract(name, extract_at, settings, connector=connector)
            jobs.gate(settings)
            jobs.load(month, first_of_next + timedelta(hours=1), settings)
            if i == 2:
                # The health side's filings arrive: one institution filed, one filing matches nothing.
                _import_filings(settings, tmp_path / "filings.csv", world)
            outcomes[month] = jobs.quality(month, settings)
            reports[month] = jobs.report(month, settings)
            packages[month] = jobs.export(month, settings)  # writes the report again, with the packages
            metrics[month] = built[-1]
    finally:
        for sim in sims.values():
            sim.close()

    expected = _independent_counts(settings, topics)
    for month in MONTHS:
        m = metrics[month]
        # Reconciliation: balanced per registrar, and equal to the independent scan.
        got = {r.registrar: (r.extracted, r.valid, r.rejected, r.connector_dlq) for r in m.reconciliation}
        want = {
            reg: (c["extracted"], c["valid"], c["rejected"], c["connector_dlq"])
            for reg, c in expected[month].items()
        }
        assert got == want, month
        assert all(r.balanced for r in m.reconciliation), month
        assert m.total.balanced
        assert sum(m.volumes_by_registrar.values()) == m.total.extracted
        # Rejection reasons: the same rule counts as the scan (each reject rule once per record).
        rules = Counter()
        for c in expected[month].values():
            rules.update({k.removeprefix("rule:"): v for k, v in c.items() if k.startswith("rule:")})
        assert {r.rule_id: r.count for r in m.rejection_reasons} == dict(rules), month
        # Volumes by county add up to the valid and gate-rejected records that carry an event.
        assert sum(c.valid for c in m.volumes_by_county) == m.total.valid
        # Measure (b)'s registrations agree with what the monthly GX suite judged on the loaded month.
        monthly = next(o for o in outcomes[month] if o.suite == "monthly")
        gx_timeliness = monthly.metrics["timeliness"]["registrar"]
        for row in (p for p in m.push_lateness if p.is_registrar and p.registrations):
            assert gx_timeliness[row.registrar.value]["on_time"] == row.registrations - row.registrations_late
            assert gx_timeliness[row.registrar.value]["total"] == row.registrations
        assert all(p.months_late >= 1 for p in m.late_pushes)
        # Measure (b) equals the loader's late count and the packages' 逾期推送 flags.
        (total_b,) = [p for p in m.push_lateness if p.is_total]
        gate = m.beyond_gate
        assert gate is not None and gate.load is not None
        assert total_b.pushes == m.total.valid == gate.load.records and gate.loaded_matches
        assert total_b.late == len(m.late_pushes) == gate.load.late == sum(p.late for p in packages[month])
        # Past the gate: packaged rows = stored events, with the hashes the packages were written with.
        assert gate.packaged_matches and gate.packaged == sum(p.rows for p in packages[month])
        assert {p.county_code: p.csv_sha256 for p in gate.packages} == {
            p.county_code: p.sha256["registrations.csv"] for p in packages[month]
        }
        # Every rejected record is in the appendix, with all its violations.
        assert len(m.rejected_records) == m.total.rejected + m.total.connector_dlq
        # Measure (a) is provisional in the month's own report (the next month is not loaded yet).
        assert m.timeliness_provisional
    # The unreadable row is January's connector DLQ: beside 编制's extracted, one rejection reason.
    january = {r.registrar: r for r in metrics["2026-01"].reconciliation}
    assert january[Registrar.BIANZHI].connector_dlq == 1
    assert {r.rule_id: r.count for r in metrics["2026-01"].rejection_reasons}["SOURCE_UNREADABLE"] == 1
    # The replay went out in February and is in February's report, and only there.
    assert replayed["replayed"] > 0
    assert [e.count for e in metrics["2026-02"].dlq_replays] == [replayed["replayed"]]
    assert list(metrics["2026-01"].dlq_replays) == []
    # Late pushes exist in this world, and 行政审批/市场监管 duplicates are found (from the roster too).
    assert sum(len(metrics[m].late_pushes) for m in MONTHS) > 0
    assert {Registrar(r) for r in DEFAULT_EXEMPT_REGISTRARS} == EXEMPT_FROM_DUPLICATES
    cross = [c for m in MONTHS for c in metrics[m].cross_registrar]
    assert cross
    assert all({Registrar.SHENPI, Registrar.SHICHANG} <= set(c.registrars) for c in cross)

    # Measure (a), checked against the independent scan: registrations dated in January and February
    # (final in March's trend, since the next month is loaded), share pushed within their month.
    dated = _dated_registrations(settings, topics)
    march_trend = {p.month: p for p in metrics["2026-03"].trend}
    for month in MONTHS[:2]:
        on_time, total = dated[month]
        assert total and march_trend[month].timeliness_share == pytest.approx(on_time / total), month
        assert not march_trend[month].timeliness_provisional
    assert march_trend["2026-03"].timeliness_provisional
    # A registration dated in January and pushed in February is a January miss, not a February one.
    assert any(p.event_date.strftime("%Y-%m") == "2026-01" for p in metrics["2026-02"].late_pushes)

    # The replayed January records were pushed in February but keep January's extraction time: late by
    # the packages' rule, not warned by the gate; the report lists exactly those as "warned = no".
    from quality.report_metrics import months_late
    from regsync.kafka.month_reader import read_month

    february = read_month(settings.kafka_bootstrap, settings.registry_url, topics, "2026-02", "Asia/Shanghai")
    replayed = {(r.partition, r.offset) for r in february.raw if r.replay_id}
    expected_unwarned = {
        p.uscc
        for j, p in zip(february.valid, february.pushed(), strict=True)
        if j.raw_position in replayed and not p.warned and months_late(p.event_date, p.pushed_at, TZ) > 0
    }
    assert {p.uscc for p in metrics["2026-02"].late_flag_mismatches} == expected_unwarned
    assert metrics["2026-02"].late_warnings == len(metrics["2026-02"].late_pushes) - len(expected_unwarned)
    # The failed GX expectations are in the report with the USCCs they found.
    for month in MONTHS:
        failures = [f for s in metrics[month].gx_suites for f in s.failures]
        assert failures, month
        html = reports[month].read_text(encoding="utf-8")
        for failure in failures:
            assert failure.found or failure.observed  # values found, or the observed figure (volume)
            assert all(f.split(" ")[0] in html for f in failure.found)
        uscc_failure = [f for f in failures if f.expectation_type == "expect_column_values_to_be_valid_uscc"]
        rejected_usccs = {r.uscc for r in metrics[month].rejected_records}
        for failure in uscc_failure:  # every invalid USCC GX found is one the gate rejected, and listed
            assert {f.split(" ")[0] for f in failure.found} <= rejected_usccs

    # The appendix files: beside the report, 0644, codes kept as text, one row per record.
    for month in MONTHS:
        folder = reports[month].parent
        assert reports[month].stat().st_mode & 0o777 == 0o644
        rejected_csv = folder / f"audit-{month}-rejected.csv"
        assert rejected_csv.stat().st_mode & 0o777 == 0o644
        lines = rejected_csv.read_text(encoding="utf-8-sig").splitlines()
        assert len(lines) == 1 + len(metrics[month].rejected_records)
        assert all('="' in line for line in lines[1:] if line.split(",")[1])  # USCC kept as text
        from openpyxl import load_workbook

        book = load_workbook(folder / f"audit-{month}-appendix.xlsx", read_only=True)
        assert len(list(book["逾期推送"].iter_rows())) == 1 + len(metrics[month].late_pushes)
        book.close()

    # Trend: one point per month so far, the current one last, figures equal to that month's totals.
    for i, month in enumerate(MONTHS):
        trend = metrics[month].trend
        assert [p.month for p in trend] == list(MONTHS[: i + 1])
        assert (trend[-1].extracted, trend[-1].valid, trend[-1].rejected) == (
            metrics[month].total.extracted,
            metrics[month].total.valid,
            metrics[month].total.rejected,
        )
        assert all(p.gx_success_rate is not None for p in trend)

    # GX outcomes stored: the trend of each suite returns every month; suites link to their Data Docs.
    engine = sa.create_engine(settings.database_url.get_secret_value())
    try:
        assert [p.month for p in gx_results.trend(engine, "monthly", DUPLICATES)] == list(MONTHS)
        gate_trend = gx_results.trend(engine, "gate_batch", "expect_column_values_to_be_unique")
        assert [p.month for p in gate_trend] == list(MONTHS)
    finally:
        engine.dispose()
    for month in MONTHS:
        assert {o.suite for o in outcomes[month]} == {"monthly", "gate_batch"}
        suites = metrics[month].gx_suites
        assert {s.suite for s in suites} == {"monthly", "gate_batch"}
        evaluated = {o.suite: (len(o.per_expectation), len(o.failed)) for o in outcomes[month]}
        assert {s.suite: (s.evaluated, s.failed) for s in suites} == evaluated
        for suite in suites:
            assert suite.data_docs_href and not suite.data_docs_href.startswith("/")
            assert (reports[month].parent / unquote(suite.data_docs_href)).is_file()

    # The filing gap appears once filings exist (imported before March's report), not before.
    assert metrics["2026-01"].filing_gap is None
    gap = metrics["2026-03"].filing_gap
    assert gap is not None
    assert gap.filed_not_registered == 1
    assert gap.registered_not_filed > 0

    # The report: written where expected, self-contained, no full resident ID anywhere.
    full_ids = {r.snapshot.legal_rep.id_number for r in world.records}
    for month in MONTHS:
        path = reports[month]
        assert path == Path(settings.output_dir) / "reports" / f"audit-{month}.html"
        html = path.read_text(encoding="utf-8")
        for needle in ("<script", "http://", "https://", "src=", "<link", "@import", "url(", "@font-face"):
            assert needle not in html, (month, needle)
        assert ID18.search(html) is None, ID18.search(html)
        assert not any(i in html for i in full_ids)
        assert f"{metrics[month].total.extracted:,}" in html

    # The CLI verbs: one line per error, the report path on success.
    for key, value in {
        "REGSYNC_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "REGSYNC_REGISTRY_URL": settings.registry_url,
        "REGSYNC_DATABASE_URL": settings.database_url.get_secret_value(),
        "REGSYNC_TOPIC_PREFIX": settings.topic_prefix,
        "REGSYNC_OUTPUT_DIR": str(settings.output_dir),
        "REGSYNC_STACK__STATE_DIR": str(tmp_path / "no-local-stack"),
    }.items():
        monkeypatch.setenv(key, value)
    from regsync.cli import app
    from regsync.settings import get_settings

    get_settings.cache_clear()
    try:
        runner = CliRunner()
        bad = runner.invoke(app, ["quality", "--month", "2026-13"])
        assert bad.exit_code == 2  # a usage error, judged before anything connects
        assert "no such month" in bad.output
        assert "Traceback" not in bad.output
        unloaded = runner.invoke(app, ["quality", "--month", "2025-12"])
        assert unloaded.exit_code == EXIT_CONFIG
        assert "not loaded yet" in unloaded.output
        done = runner.invoke(app, ["report", "--month", MONTHS[0]])
        assert done.exit_code == 0, done.output
        assert done.output.strip().endswith(f"audit-{MONTHS[0]}.html")
        packaged = runner.invoke(app, ["export", "--month", MONTHS[0]])
        assert packaged.exit_code == 0, packaged.output
        assert f"{MONTHS[0]}: " in packaged.output and "county packages" in packaged.output
        assert any((settings.output_dir / "packages" / MONTHS[0]).iterdir())
    finally:
        get_settings.cache_clear()
