"""The numbers behind the monthly audit report, gathered from Kafka and the filing store.

Why this lives in the composition root: the report's figures come from two places — the topics
(what was extracted, judged valid, rejected) and the SQL store (the roster, filings, GX results,
earlier months) — and only ``regsync`` may talk to both. :func:`build_metrics` gathers everything
into one frozen :class:`~quality.report_model.MonthlyMetrics`; :func:`write_month_report` hands it to
the renderer, which does no I/O and no counting.

Month M means *pushed in M*: every record of each topic whose own timestamp falls in M
(``settings.timezone``), wherever it sits (:mod:`regsync.kafka.windows`). The gate keeps the raw
record's timestamp on its outputs, so the raw, valid and rejected months hold the same pushes
(connector DLQ records carry their extraction's as-of), and ``extracted = valid + rejected`` can be
checked per registrar. Whatever is extracted but not judged yet (the gate has not run) shows as a
positive difference — exactly what the report's ✗ is for.

What each figure is computed from (:func:`build_metrics`):

==========================  ==========================================================================
reconciliation              raw window (extracted), valid window (valid), rejected window split into
                            gate rejections (a decoded event, or a raw record the gate could not
                            decode) and connector DLQ records (``SOURCE_UNREADABLE``: no event at all),
                            per registrar. Connector DLQ records are shown beside ``extracted``, not
                            inside it, as :class:`~quality.report_model.ReconRow` and the template say.
rejection reasons           gate rejections: each reject-severity rule once per record; plus one row
                            for the connector DLQ
warnings                    warn-severity findings on the valid window's events, once per event
volumes                     by registrar: the raw window; by county: valid events by kind and gate
                            rejections, at the county the event is pushed to (``event_county``)
timeliness (a)              registrations (:data:`REGISTRATION_TYPES`) *dated* in M, from the valid
                            window of M and the store's ``institution_events`` of every loaded month
                            (a registration of M pushed in M+1 is only there); share pushed (Kafka
                            timestamp, configured zone) within M. Provisional while M+1 has no load
                            manifest.
timeliness (b), late list   every valid event *pushed* in M (the valid window): late when its event
                            date's month is before the push month — the loader's ``late`` and the
                            packages' 逾期推送, so the count equals theirs. ``LATE_PUSH`` warnings are
                            the gate's judgement on ``extracted_at`` and differ for DLQ replays.
appendix                    every rejected record with all violations, the late pushes, the misses of
                            (a), the unfiled institutions; as CSV/XLSX beside the report
                            (:mod:`regsync.reporting.appendix`)
beyond the gate             ``load_manifests`` of (M, valid topic), ``institution_events`` of M, and the
                            latest ``county_pushes`` row per county (hashes)
cross-registrar             USCCs in the month's valid events whose registrars (store roster ∪ the
                            month's events, 教育 exempt as in the GX suite) number two or more
trend                       the ``monthly_metrics`` table (this module; upserted on every build) for
                            every month ≤ M, plus the GX expectation pass rate from ``quality_runs``
gx suites, replays, gap     ``quality_runs`` of M (latest run per suite); :func:`regsync.stages.dlq.replay_log`
                            (replays whose records were pushed in M, or made during M);
                            :func:`sink.filing.filing_gap` at the month's last day (``None`` when no
                            filings were ever imported)
==========================  ==========================================================================

Personal data: institution names and replay operators are masked here with
:func:`schemas.masking.mask_text`; the renderer masks every string again. USCCs are organisation
identifiers from a public register and stay readable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from quality import report_metrics as metrics
from quality.month_records import MonthRecords
from quality.report_model import MonthlyMetrics
from regsync.endpoints import Services
from regsync.kafka.month_reader import read_month, source_registrars
from regsync.kafka.topics import Topics
from regsync.outputs import reports_dir
from regsync.reporting import history
from regsync.settings import Settings
from schemas.events import Registrar

__all__ = ["build_metrics", "write_month_report"]


def build_metrics(
    *, settings: Settings, services: Services, topics: Topics, month: str, records: MonthRecords | None = None
) -> MonthlyMetrics:
    """Gather the month's report figures (see the module docstring) and record its headline figures."""
    from schemas.month import Month
    from sink.store import create_engine, upgrade

    tz = settings.timezone
    start, end = Month.parse(month).bounds(tz)  # fails in one line on a malformed month
    if records is None:
        records = read_month(services.bootstrap_servers, services.registry_url, topics, month, tz)
    upgrade(services.database_url)  # roster and filings tables exist even before the first load
    engine = create_engine(services.database_url)
    try:
        recon = metrics.reconciliation(records, _configured_registrars(settings))
        pushed = records.pushed()
        dated_from, dated_until = history.month_dates(month)
        stored = history.stored_pushes(engine, topics.valid, dated_from=dated_from, dated_until=dated_until)
        timeliness, misses = metrics.registration_timeliness([*pushed, *stored], month, tz)
        lateness, late = metrics.push_lateness(pushed, tz)
        provisional = history.next_month(month) not in history.loaded_months(engine, topics.valid)
        cross = history.cross_registrar(engine, records)
        overall = next((t for t in timeliness if t.is_total), None)
        history.record_headline(
            engine,
            month=month,
            valid_topic=topics.valid,
            recon=recon,
            registrations=overall.registrations if overall else 0,
            pushed_in_month=overall.pushed_in_month if overall else 0,
            late_pushes=len(late),
            cross_registrar=len(cross),
        )
        out = reports_dir(settings)
        gap, unfiled = history.filing_gap(engine, (end - timedelta(days=1)).astimezone(ZoneInfo(tz)).date())
        return MonthlyMetrics(
            month=month,
            generated_at=datetime.now(UTC),
            timezone=tz,
            reconciliation=recon,
            volumes_by_registrar=metrics.volumes_by_registrar(records),
            volumes_by_county=metrics.volumes_by_county(records),
            rejection_reasons=metrics.rejection_reasons(records),
            warnings=metrics.warnings(records),
            timeliness=timeliness,
            cross_registrar=cross,
            late_pushes=late,
            trend=history.trend(engine, month, topics.valid, tz),
            gx_suites=history.gx_suites(engine, month, out),
            dlq_replays=history.replays(services.database_url, records, start, end),
            filing_gap=gap,
            timeliness_threshold=settings.timeliness_threshold,
            timeliness_provisional=provisional,
            push_lateness=lateness,
            timeliness_misses=misses,
            late_warnings=metrics.late_warnings(records),
            rejected_records=metrics.rejected_rows(records),
            unfiled=unfiled,
            beyond_gate=history.beyond_gate(engine, month, topics.valid, len(records.valid)),
        )
    finally:
        engine.dispose()


def write_month_report(
    *, settings: Settings, services: Services, topics: Topics, month: str, records: MonthRecords | None = None
) -> Path:
    """Build the month's metrics and write ``<output_dir>/reports/audit-<month>.html``; returns its path."""
    from quality.report import write_report
    from regsync.reporting.appendix import write_appendices

    metrics = build_metrics(settings=settings, services=services, topics=topics, month=month, records=records)
    folder = reports_dir(settings)
    write_appendices(metrics, folder)  # first, so the report's links never point at missing files
    return write_report(metrics, folder)


def _configured_registrars(settings: Settings) -> set[Registrar]:
    """Registrars whose source is configured: listed even in a month they sent nothing (a finding)."""
    from regsync import sources

    registrars = source_registrars()
    return {registrars[name] for name in sources.configured(settings) if name in registrars}
