"""The audit report's figures that come from the database: history, roster, GX results, replays.

What one month's topics cannot say — earlier months (the trend), the roster's registrars (duplicates
across registrars), the Great Expectations runs, DLQ replays and the filing gap — is queried here.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from quality.month_records import EXEMPT_FROM_DUPLICATES, UNRESOLVED_COUNTY_CODE, MonthRecords, Pushed
from quality.report_metrics import county_of
from quality.report_model import (
    BeyondGate,
    CrossRegistrar,
    FailedExpectation,
    GapRow,
    GapSummary,
    LoadRecon,
    PackageRow,
    ReconRow,
    ReplayEntry,
    SuiteSummary,
    TrendPoint,
    UnfiledRow,
)
from regsync.bookkeeping.tables import monthly_metrics
from schemas.events import EventType, Registrar, RegistrationEvent
from schemas.masking import mask_text

__all__ = [
    "beyond_gate",
    "cross_registrar",
    "filing_gap",
    "gx_suites",
    "loaded_months",
    "month_dates",
    "next_month",
    "record_headline",
    "replays",
    "stored_pushes",
    "timeliness_trend",
    "trend",
]

_IN_CHUNK: Final = 1000  # bound on IN (...) lists


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def cross_registrar(engine: sa.Engine, records: MonthRecords) -> list[CrossRegistrar]:
    """Institutions in this month's valid events that two or more registrars have pushed.

    The roster's ``registrars`` remembers every registrar ever loaded for a USCC, so a duplicate
    whose second push came months later is still found; the month's own events are added in case
    the month is not loaded yet. 教育 is exempt (its 托班 event is about an entity another
    registrar registered), as in the GX duplicate check.
    """
    from sink.models import institutions

    seen: dict[str, set[Registrar]] = defaultdict(set)
    latest: dict[str, RegistrationEvent] = {}
    for judged in records.valid:
        assert judged.event is not None
        seen[judged.event.institution.uscc].add(judged.event.registrar)
        latest[judged.event.institution.uscc] = judged.event
    stored: dict[str, Mapping[str, Any]] = {}
    with engine.connect() as conn:
        for chunk in _chunks(sorted(seen)):
            query = sa.select(
                institutions.c.uscc,
                institutions.c.name,
                institutions.c.registrars,
                institutions.c.county_code,
            ).where(institutions.c.uscc.in_(chunk))
            stored.update({row["uscc"]: row for row in conn.execute(query).mappings()})
    exempt = EXEMPT_FROM_DUPLICATES
    found = []
    for uscc in sorted(seen):
        row = stored.get(uscc)
        registrars = set(seen[uscc])
        if row is not None:
            registrars |= {Registrar(r) for r in str(row["registrars"]).split(",") if r}
        if len(registrars - exempt) < 2:
            continue
        event = latest[uscc]
        found.append(
            CrossRegistrar(
                uscc,
                mask_text(row["name"] if row is not None else event.institution.name),
                tuple(r for r in Registrar if r in registrars),
                (row["county_code"] if row is not None else None) or county_of(event),
            )
        )
    return found


# ----
# Trend, GX suites, replays, filing gap


def record_headline(
    engine: sa.Engine,
    *,
    month: str,
    valid_topic: str,
    recon: Sequence[ReconRow],
    registrations: int,
    pushed_in_month: int,
    late_pushes: int,
    cross_registrar: int,
) -> None:
    """Upsert the month's headline figures (delete + insert in one transaction: re-runs replace)."""
    from regsync.bookkeeping.migrate import ensure

    ensure(engine)
    row = {
        "month": month,
        "valid_topic": valid_topic,
        "extracted": sum(r.extracted for r in recon),
        "valid": sum(r.valid for r in recon),
        "rejected": sum(r.rejected for r in recon),
        "connector_dlq": sum(r.connector_dlq for r in recon),
        "registrations": registrations,
        "pushed_in_month": pushed_in_month,
        "late_pushes": late_pushes,
        "cross_registrar": cross_registrar,
        "generated_at": datetime.now(UTC),
    }
    table = monthly_metrics
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.month == month, table.c.valid_topic == valid_topic))
        conn.execute(sa.insert(table), [row])


def _latest_runs(conn: sa.Connection, months: Sequence[str]) -> list[sa.RowMapping]:
    """The latest ``quality_runs`` row of each (month, suite): a re-run replaces the verdict."""
    from quality.gx_results import quality_runs

    rows = conn.execute(
        sa.select(quality_runs)
        .where(quality_runs.c.month.in_(list(months)))
        .order_by(quality_runs.c.month, quality_runs.c.suite, quality_runs.c.started_at)
    ).mappings()
    latest: dict[tuple[str, str], sa.RowMapping] = {}
    for row in rows:
        latest[(row["month"], row["suite"])] = row
    return list(latest.values())


def _expectation_counts(
    conn: sa.Connection, runs: Sequence[sa.RowMapping]
) -> dict[tuple[str, str], Counter[bool]]:
    """(run, suite) → {passed: n, failed: m} over the runs' expectations."""
    from quality.gx_results import quality_results

    counts: dict[tuple[str, str], Counter[bool]] = defaultdict(Counter)
    run_ids = sorted({r["run_id"] for r in runs})
    q = quality_results.c
    for chunk in _chunks(run_ids):
        query = (
            sa.select(q.run_id, q.suite, q.success, sa.func.count())
            .where(q.run_id.in_(chunk))
            .group_by(q.run_id, q.suite, q.success)
        )
        for run_id, suite, success, n in conn.execute(query):
            counts[(run_id, suite)][bool(success)] += n
    return counts


def _gx_success_rates(engine: sa.Engine, months: Sequence[str]) -> dict[str, float | None]:
    """Per month: passed expectations / evaluated ones over the latest run of each suite.

    Expectations rather than suites, because a gate batch with any rejected record fails a suite
    every month; the share of checks passed still moves when quality does.
    """
    if not months or not sa.inspect(engine).has_table("quality_runs"):
        return {}
    with engine.connect() as conn:
        runs = _latest_runs(conn, months)
        counts = _expectation_counts(conn, runs)
    passed: Counter[str] = Counter()
    evaluated: Counter[str] = Counter()
    for run in runs:
        c = counts.get((run["run_id"], run["suite"]), Counter())
        passed[run["month"]] += c[True]
        evaluated[run["month"]] += c[True] + c[False]
    return {m: passed[m] / evaluated[m] for m in evaluated if evaluated[m]}


def trend(engine: sa.Engine, month: str, valid_topic: str, tz: str) -> list[TrendPoint]:
    """Headline figures of every reported month up to ``month``, with both timeliness measures and GX.

    The timeliness measures are recomputed from the store each time (not read from ``monthly_metrics``),
    so an earlier month's measure (a) becomes final in the trend once its next month is loaded.
    """
    table = monthly_metrics
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(table)
                .where(table.c.valid_topic == valid_topic, table.c.month <= month)
                .order_by(table.c.month)
            ).mappings()
        )
    months = [r["month"] for r in rows]
    rates = _gx_success_rates(engine, months)
    measures = timeliness_trend(engine, valid_topic, months, tz)
    points = []
    for r in rows:
        dated, late, provisional = measures.get(r["month"], (None, None, True))
        points.append(
            TrendPoint(
                month=r["month"],
                extracted=r["extracted"],
                valid=r["valid"],
                rejected=r["rejected"],
                timeliness_share=dated,
                gx_success_rate=rates.get(r["month"]),
                late_share=late,
                timeliness_provisional=provisional,
            )
        )
    return points


def month_dates(month: str) -> tuple[date, date]:
    """First day of ``month`` and of the next month (event dates are calendar dates)."""
    year, mon = (int(x) for x in month.split("-"))
    return date(year, mon, 1), date(year + (mon == 12), mon % 12 + 1, 1)


def next_month(month: str) -> str:
    """``YYYY-MM`` of the month after ``month``."""
    return month_dates(month)[1].strftime("%Y-%m")


def loaded_months(engine: sa.Engine, valid_topic: str) -> set[str]:
    """Months of ``valid_topic`` with a load manifest."""
    from sink.models import load_manifests as lm

    with engine.connect() as conn:
        return set(conn.scalars(sa.select(lm.c.month).where(lm.c.topic == valid_topic)))


def stored_pushes(
    engine: sa.Engine,
    valid_topic: str,
    *,
    dated_from: date,
    dated_until: date,
    registrations_only: bool = True,
) -> list[Pushed]:
    """Events of ``valid_topic`` already loaded whose event date is in ``[dated_from, dated_until)``.

    Measure (a) needs the pushes of every loaded month, not only the report month's window: a
    registration dated in M may be pushed in M+1. The push instant is the stored Kafka timestamp,
    ``extracted_at`` when it is missing (as the GX monthly frame does).
    """
    from quality.month_records import LATE_PUSH_RULE, REGISTRATION_TYPES
    from sink.models import institution_events as ev

    query = sa.select(
        ev.c.event_id,
        ev.c.uscc,
        ev.c.registrar,
        ev.c.event_type,
        ev.c.event_date,
        ev.c.county_code,
        ev.c.pushed_at,
        ev.c.extracted_at,
        ev.c.event_json,
    ).where(ev.c.kafka_topic == valid_topic, ev.c.event_date >= dated_from, ev.c.event_date < dated_until)
    if registrations_only:
        query = query.where(ev.c.event_type.in_(sorted(t.value for t in REGISTRATION_TYPES)))
    out = []
    with engine.connect() as conn:
        for row in conn.execute(query.order_by(ev.c.kafka_partition, ev.c.kafka_offset)).mappings():
            doc = row["event_json"] if isinstance(row["event_json"], dict) else json.loads(row["event_json"])
            warnings = doc.get("quality_warnings") or ()
            out.append(
                Pushed(
                    row["event_id"],
                    row["uscc"],
                    str((doc.get("institution") or {}).get("name") or ""),
                    Registrar(row["registrar"]),
                    EventType(row["event_type"]),
                    row["event_date"],
                    row["county_code"] or UNRESOLVED_COUNTY_CODE,
                    _aware(row["pushed_at"] or row["extracted_at"]),
                    any(isinstance(w, dict) and w.get("rule_id") == LATE_PUSH_RULE for w in warnings),
                )
            )
    return out


def timeliness_trend(
    engine: sa.Engine, valid_topic: str, months: Sequence[str], tz: str
) -> dict[str, tuple[float | None, float | None, bool]]:
    """Per month: measure (a) share, measure (b) late share, and whether (a) is still provisional."""
    from quality.report_metrics import months_late, registration_timeliness
    from sink.models import institution_events as ev

    if not months:
        return {}
    zone = ZoneInfo(tz)
    loaded = loaded_months(engine, valid_topic)
    first, _ = month_dates(min(months))
    _, last = month_dates(max(months))
    pushes = stored_pushes(engine, valid_topic, dated_from=first, dated_until=last)
    late_by_month: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    with engine.connect() as conn:
        query = sa.select(ev.c.load_month, ev.c.event_date, ev.c.pushed_at, ev.c.extracted_at).where(
            ev.c.kafka_topic == valid_topic, ev.c.load_month.in_(list(months))
        )
        for load_month, event_date, pushed_at, extracted_at in conn.execute(query):
            cell = late_by_month[load_month]
            cell[0] += 1
            cell[1] += months_late(event_date, _aware(pushed_at or extracted_at), zone) > 0
    out = {}
    for month in months:
        rows, _ = registration_timeliness(pushes, month, tz)
        dated = next((r.share for r in rows if r.is_total), None)
        pushes_n, late_n = late_by_month.get(month, [0, 0])
        out[month] = (dated, late_n / pushes_n if pushes_n else None, next_month(month) not in loaded)
    return out


def gx_suites(engine: sa.Engine, month: str, out_dir: Path) -> list[SuiteSummary]:
    """The month's suites (latest run each), linked relatively to their Data Docs page."""
    if not sa.inspect(engine).has_table("quality_runs"):
        return []
    with engine.connect() as conn:
        runs = _latest_runs(conn, [month])
        counts = _expectation_counts(conn, runs)
    summaries = []
    for run in sorted(runs, key=lambda r: r["suite"]):
        c = counts.get((run["run_id"], run["suite"]), Counter())
        metrics = run["metrics"] or {}
        page = metrics.get("data_docs_page") or run["data_docs_path"]
        summaries.append(
            SuiteSummary(
                suite=run["suite"],
                success=bool(run["success"]),
                evaluated=c[True] + c[False],
                failed=c[False],
                data_docs_href=SuiteSummary.href_to(page, out_dir) if page else None,
                failures=_failures(engine, run["run_id"], run["suite"]),
            )
        )
    return summaries


def _failures(engine: sa.Engine, run_id: str, suite: str) -> list[FailedExpectation]:
    """The run's failed expectations with what they found (GX's masked sample, or every USCC)."""
    from quality.gx_results import quality_results

    q = quality_results.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(quality_results)
            .where(q.run_id == run_id, q.suite == suite, q.success.is_(False))
            .order_by(q.position)
        ).mappings()
        out = []
        for row in rows:
            details = row["details"] or {}
            if isinstance(details, str):
                details = json.loads(details)
            found = _found(details)
            observed = details.get("observed_value")
            out.append(
                FailedExpectation(
                    suite=suite,
                    expectation_type=row["expectation_type"],
                    column=row["column_name"],
                    condition=row["row_condition"],
                    element_count=row["element_count"],
                    unexpected_count=row["unexpected_count"],
                    found=[mask_text(f) for f in found],
                    observed=None
                    if observed is None
                    else mask_text(json.dumps(observed, ensure_ascii=False)),
                    exception=None if not details.get("exception") else mask_text(str(details["exception"])),
                )
            )
    return out


def _found(details: Mapping[str, Any]) -> list[str]:
    """What a failed expectation found: every offending USCC, else the sample's USCCs with their values.

    The cross-registrar check lists every offending USCC with its registrars; other expectations have
    GX's partial list, named by USCC when the runner asked GX for it (``unexpected_usccs``, same order).
    """
    offending = details.get("offending_usccs")
    if isinstance(offending, dict) and offending:
        return [f"{code} ({'、'.join(regs)})" for code, regs in sorted(offending.items())]
    sample = [str(v) for v in details.get("unexpected_sample") or ()]
    usccs = [str(u) for u in details.get("unexpected_usccs") or ()]
    if usccs and len(usccs) == len(sample):
        return [f"{u} ({v})" if v != u else u for u, v in zip(usccs, sample, strict=True)]
    return usccs or sample


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for ``DateTime(timezone=True)``; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def replays(database_url: str, records: MonthRecords, start: datetime, end: datetime) -> list[ReplayEntry]:
    """Replays whose records were pushed this month, or that were made (dry runs too) during it.

    The first link is what matters on a replayed history: a replay's own ``at`` is the operator's
    wall clock, while its records carry the as-of push time the month window is cut by.
    """
    from regsync.stages.dlq import replay_log

    pushed = {r.replay_id for r in records.raw if r.replay_id}
    entries = []
    for row in replay_log(database_url):
        at = _aware(row["at"])
        if row["replay_id"] not in pushed and not start <= at < end:
            continue
        flt = {k: v for k, v in json.loads(row["filter_json"]).items() if v is not None}
        what = "dry run: " if row["dry_run"] else ""
        what += ", ".join(f"{k}={v}" for k, v in sorted(flt.items())) or "all rejected records"
        if row["reason"]:
            what += f" — {row['reason']}"
        count = row["matched"] if row["dry_run"] else row["replayed"]
        entries.append(ReplayEntry(mask_text(row["who"]), at, mask_text(what), count))
    entries.sort(key=lambda e: e.when)
    return entries


def filing_gap(engine: sa.Engine, as_of: date) -> tuple[GapSummary | None, list[UnfiledRow]]:
    """Per county at ``as_of``, and every 登记未备案 institution; ``None`` until filings were imported."""
    from sink.filing import filing_gap
    from sink.models import filings

    with engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(filings)).scalar_one() == 0:
            return None, []
    gap = filing_gap(engine, as_of=as_of)
    summary = GapSummary(
        tuple(
            GapRow(
                c.county_code,
                len(c.registered_not_filed),
                max((u.days_since for u in c.registered_not_filed), default=None),
                len(c.filed_not_registered),
            )
            for c in gap.counties
        )
    )
    unfiled = [
        UnfiledRow(
            c.county_code, u.uscc, mask_text(u.name), u.registered_on, max(u.days_since, 0), u.registrars
        )
        for c in gap.counties
        for u in c.registered_not_filed
    ]
    return summary, unfiled


def beyond_gate(engine: sa.Engine, month: str, valid_topic: str, valid: int) -> BeyondGate:
    """Valid (Kafka) → load manifest → stored events → county packages (latest package per county)."""
    from sink.models import county_pushes as cp
    from sink.models import institution_events as ev
    from sink.models import load_manifests as lm

    with engine.connect() as conn:
        manifest = (
            conn.execute(sa.select(lm).where(lm.c.month == month, lm.c.topic == valid_topic))
            .mappings()
            .first()
        )
        stored = conn.execute(
            sa.select(sa.func.count()).select_from(ev).where(ev.c.load_month == month)
        ).scalar_one()
        latest: dict[str, sa.RowMapping] = {}
        for row in conn.execute(
            sa.select(cp).where(cp.c.month == month).order_by(cp.c.created_at, cp.c.id)
        ).mappings():
            latest[row["county_code"]] = row
    load = None
    if manifest is not None:
        load = LoadRecon(
            manifest["id"],
            manifest["run_id"],
            manifest["checksum"],
            manifest["records"],
            manifest["inserted"],
            manifest["duplicates"],
            manifest["late"],
            _aware(manifest["loaded_at"]),
        )
    packages = [
        PackageRow(
            r["county_code"],
            r["county_name"],
            r["rows"],
            r["late"],
            r["csv_sha256"],
            r["xlsx_sha256"],
            r["manifest_sha256"],
            _aware(r["created_at"]),
        )
        for code, r in sorted(latest.items(), key=lambda kv: (kv[0] == UNRESOLVED_COUNTY_CODE, kv[0]))
    ]
    return BeyondGate(valid=valid, load=load, stored=int(stored), packages=packages)
