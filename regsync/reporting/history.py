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

import sqlalchemy as sa

from quality.month_records import EXEMPT_FROM_DUPLICATES, MonthRecords
from quality.report_metrics import county_of
from quality.report_model import (
    CrossRegistrar,
    GapRow,
    GapSummary,
    ReconRow,
    ReplayEntry,
    SuiteSummary,
    TrendPoint,
)
from regsync.bookkeeping.tables import monthly_metrics
from schemas.events import Registrar, RegistrationEvent
from schemas.masking import mask_text

__all__ = ["cross_registrar", "filing_gap", "gx_suites", "record_headline", "replays", "trend"]

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


def trend(engine: sa.Engine, month: str, valid_topic: str) -> list[TrendPoint]:
    """Headline figures of every reported month up to ``month``, with the GX pass rate."""
    table = monthly_metrics
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                sa.select(table)
                .where(table.c.valid_topic == valid_topic, table.c.month <= month)
                .order_by(table.c.month)
            ).mappings()
        )
    rates = _gx_success_rates(engine, [r["month"] for r in rows])
    return [
        TrendPoint(
            month=r["month"],
            extracted=r["extracted"],
            valid=r["valid"],
            rejected=r["rejected"],
            timeliness_share=r["pushed_in_month"] / r["registrations"] if r["registrations"] else None,
            gx_success_rate=rates.get(r["month"]),
        )
        for r in rows
    ]


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
            )
        )
    return summaries


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


def filing_gap(engine: sa.Engine, as_of: date) -> GapSummary | None:
    """Per county at ``as_of``; ``None`` until the health side's filings were imported at least once."""
    from sink.filing import filing_gap
    from sink.models import filings

    with engine.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(filings)).scalar_one() == 0:
            return None
    gap = filing_gap(engine, as_of=as_of)
    return GapSummary(
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
