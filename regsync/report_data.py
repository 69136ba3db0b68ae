"""The numbers behind the monthly audit report, gathered from Kafka and the filing store.

Why this lives in the composition root: the report's figures come from two places — the topics
(what was extracted, judged valid, rejected) and the SQL store (the roster, filings, GX results,
earlier months) — and only ``regsync`` may talk to both. :func:`build_metrics` gathers everything
into one frozen :class:`~quality.report_model.MonthlyMetrics`; :func:`write_month_report` hands it to
the renderer, which does no I/O and no counting.

Month M means *pushed in M*: each topic is read between the offsets :func:`regsync.load.month_window`
finds for the first instant of M and of M+1 (``settings.timezone``). The gate keeps the raw record's
timestamp on its outputs and connectors stamp their DLQ records with the same extraction instant, so
the raw, valid and rejected windows hold the same pushes, and ``extracted = valid + rejected`` can be
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
timeliness, late pushes     the valid window's registrations (:data:`REGISTRATION_TYPES`): pushed
                            (Kafka timestamp) in the calendar month of the event date, in the
                            configured zone — the rule the ``monthly`` GX suite checks on the same rows
cross-registrar             USCCs in the month's valid events whose registrars (store roster ∪ the
                            month's events, 教育 exempt as in the GX suite) number two or more
trend                       the ``monthly_metrics`` table (this module; upserted on every build) for
                            every month ≤ M, plus the GX expectation pass rate from ``quality_runs``
gx suites, replays, gap     ``quality_runs`` of M (latest run per suite); :func:`regsync.dlq.replay_log`
                            (replays whose records were pushed in M, or made during M);
                            :func:`sink.filing.filing_gap` at the month's last day (``None`` when no
                            filings were ever imported)
==========================  ==========================================================================

Personal data: institution names and replay operators are masked here with
:func:`schemas.masking.mask_text`; the renderer masks every string again. USCCs are organisation
identifiers from a public register and stay readable.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from quality.report_model import (
    CountyVolume,
    CrossRegistrar,
    GapRow,
    GapSummary,
    LatePush,
    MonthlyMetrics,
    ReconRow,
    ReplayEntry,
    RuleCount,
    SuiteSummary,
    Timeliness,
    TrendPoint,
)
from regsync import bus
from regsync.endpoints import Services
from regsync.settings import Settings
from regsync.topics import Topics
from schemas.events import EventType, Registrar, RegistrationEvent, RejectedRecord, RuleViolation, Severity
from schemas.masking import mask_text

__all__ = [
    "DEREGISTRATION_TYPES",
    "EXEMPT_FROM_DUPLICATES",
    "REGISTRATION_TYPES",
    "UNRESOLVED_COUNTY_CODE",
    "Judged",
    "MonthRecords",
    "RawRecord",
    "build_metrics",
    "metadata",
    "monthly_metrics",
    "read_month",
    "report_dir",
    "source_registrars",
    "write_month_report",
]

_LOGGER = logging.getLogger(__name__)

REGISTRATION_TYPES: Final = frozenset(
    {EventType.ESTABLISHED, EventType.SCOPE_ADDED_CHILDCARE, EventType.CHILDCARE_CLASS_ADDED}
)
"""Events that make an institution a registered childcare provider: what the push-within-the-month
rule is about. 教育's 托班 event is included: for a kindergarten it is the moment it starts childcare."""

DEREGISTRATION_TYPES: Final = frozenset({EventType.DEREGISTERED, EventType.REVOKED})
"""注销/吊销; every other valid event counts as a change in the county table."""

EXEMPT_FROM_DUPLICATES: Final = frozenset({Registrar.JIAOYU})
"""Registrars whose events never make a cross-registrar duplicate: the GX suite's default
(``quality.expectations.DEFAULT_EXEMPT_REGISTRARS``), kept here because importing that module loads
Great Expectations, which a report does not otherwise need (the tests keep the two equal)."""

UNRESOLVED_COUNTY_CODE: Final = "000000"
"""Where events without a county are counted (the same bucket the county packages use)."""

_CONNECTOR_DLQ_RULE: Final = "SOURCE_UNREADABLE"  # regsync.extract.INVALID_SOURCE_RULE, not in the catalog
_CONNECTOR_DLQ_ZH: Final = "来源记录无法转换为事件（连接器死信，未进入抽取计数）。"
_CONNECTOR_DLQ_EN: Final = "The source record could not become an event (connector DLQ; outside extracted)."
_REPLAY_ID_HEADER: Final = "regsync.replay_id"
_IN_CHUNK: Final = 1000  # bound on IN (...) lists

# The sources' settings fields, to list a configured registrar even in a month it sent nothing.
_SOURCE_SETTINGS: Final = {
    "bianzhi": "bianzhi_url",
    "minzheng": "minzheng_url",
    "shichang": "shichang_drop_dir",
    "shenpi": "shenpi_url",
    "jiaoyu": "jiaoyu_feed",
}

metadata: Final = sa.MetaData()
"""This module's table; its schema is migrated by :mod:`regsync.migrate`."""

monthly_metrics: Final = sa.Table(
    "monthly_metrics",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("valid_topic", sa.String(249), primary_key=True, comment="tenants sharing a store stay apart"),
    sa.Column("extracted", sa.Integer, nullable=False),
    sa.Column("valid", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("connector_dlq", sa.Integer, nullable=False),
    sa.Column("registrations", sa.Integer, nullable=False),
    sa.Column("pushed_in_month", sa.Integer, nullable=False),
    sa.Column("late_pushes", sa.Integer, nullable=False),
    sa.Column("cross_registrar", sa.Integer, nullable=False),
    sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
)
"""Headline figures of each reported month, so the trend does not re-read every month from Kafka."""


# --------------------------------------------------------------------------------------------------
# The month's records, from Kafka


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record of the raw window; ``event`` is ``None`` when it does not decode."""

    partition: int
    offset: int
    timestamp_ms: int
    source: str | None
    registrar: Registrar | None
    event: RegistrationEvent | None
    replay_id: str | None = None


@dataclass(frozen=True, slots=True)
class Judged:
    """One record of the valid (``accepted``) or rejected (``rejected``) window.

    ``raw_position`` is the raw record it was judged from (the gate's headers); ``None`` for connector
    DLQ records, which never were on the raw topic.
    """

    verdict: str
    partition: int
    offset: int
    timestamp_ms: int
    source: str | None
    registrar: Registrar | None
    event: RegistrationEvent | None
    violations: tuple[RuleViolation, ...]
    raw_position: tuple[int, int] | None
    connector_dlq: bool = False


@dataclass(frozen=True, slots=True)
class MonthRecords:
    """Everything pushed in one month on the three topics, decoded."""

    month: str
    raw: tuple[RawRecord, ...]
    valid: tuple[Judged, ...]
    rejected: tuple[Judged, ...]
    outside_month: int = 0
    """Records inside a window whose own timestamp is outside the month (see :func:`read_month`)."""

    @property
    def gate_rejected(self) -> tuple[Judged, ...]:
        """Rejections by the gate (everything on the DLQ except the connectors' own records)."""
        return tuple(r for r in self.rejected if not r.connector_dlq)

    @property
    def connector_dlq(self) -> tuple[Judged, ...]:
        """Source rows a connector could not turn into an event."""
        return tuple(r for r in self.rejected if r.connector_dlq)

    def judged(self) -> Iterator[tuple[RawRecord, Judged]]:
        """Each raw record of the window with its verdict (records not judged yet are left out)."""
        verdicts = {j.raw_position: j for j in (*self.valid, *self.gate_rejected) if j.raw_position}
        for raw in self.raw:
            verdict = verdicts.get((raw.partition, raw.offset))
            if verdict is not None:
                yield raw, verdict


@cache
def source_registrars() -> Mapping[str, Registrar]:
    """Source name (the ``regsync.source`` header) → registrar, from each connector's declared spec."""
    from connectors.bianzhi import BianzhiConnector
    from connectors.jiaoyu import JiaoyuConnector
    from connectors.minzheng import MinzhengConnector
    from connectors.shenpi import ShenpiConnector
    from connectors.shichang import ShichangConnector

    classes = (BianzhiConnector, MinzhengConnector, ShichangConnector, ShenpiConnector, JiaoyuConnector)
    return {c.spec.name: c.spec.registrar for c in classes}


def _registrar(source: str | None, event: RegistrationEvent | None) -> Registrar | None:
    """The event's own registrar, else the one its source declares, else unknown."""
    if event is not None:
        return event.registrar
    return source_registrars().get(source or "")


def _int_header(record: object, name: str) -> int | None:
    value = bus.header(record, name)
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def read_month(bootstrap: str, registry_url: str, topics: Topics, month: str, tz: str) -> MonthRecords:
    """Decode the month's windows of raw, valid and rejected (read_committed).

    The windows are the loader's (:func:`regsync.load.month_window`), so "valid in M" here is exactly
    what the load of M stored. The window search assumes push time never goes backwards within a
    partition; records whose own timestamp falls outside M are still counted with the window (as the
    load does) but logged, because they mean that assumption broke.
    """
    from regsync.load import month_window

    codecs = bus.load_codecs(registry_url, topics)
    outside = 0
    # Each window is a binary search of round trips per partition; the three topics' run side by side.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="month-window") as pool:
        found = {t: pool.submit(month_window, bootstrap, t, month, tz) for t in topics.all()}
        windows = {t: f.result() for t, f in found.items()}
    start_ms = int(windows[topics.raw].start.timestamp() * 1000)
    end_ms = int(windows[topics.raw].end.timestamp() * 1000)

    def scan(topic: str) -> Iterator[Any]:
        nonlocal outside
        window = windows[topic]
        start = {p: r[0] for p, r in window.ranges.items()}
        stop = {p: r[1] for p, r in window.ranges.items()}
        for record in bus.scan(bootstrap, topic, start, stop):
            outside += not start_ms <= record.timestamp < end_ms
            yield record

    raw = []
    for record in scan(topics.raw):
        source = bus.header(record, bus.HEADER_SOURCE)
        try:
            event: RegistrationEvent | None = RegistrationEvent.from_avro(codecs.raw.decode(record.value))
        except Exception:  # the gate sends these to the DLQ as SCHEMA_INVALID; here they only count
            event = None
        raw.append(
            RawRecord(
                record.partition,
                record.offset,
                record.timestamp,
                source,
                _registrar(source, event),
                event,
                bus.header(record, _REPLAY_ID_HEADER),
            )
        )
    valid = []
    for record in scan(topics.valid):
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        source = bus.header(record, bus.HEADER_SOURCE)
        raw_partition = _int_header(record, "regsync.raw_partition")
        raw_offset = _int_header(record, "regsync.raw_offset")
        position = None if raw_partition is None or raw_offset is None else (raw_partition, raw_offset)
        valid.append(
            Judged(
                "accepted",
                record.partition,
                record.offset,
                record.timestamp,
                source,
                event.registrar,
                event,
                event.quality_warnings,
                position,
            )
        )
    rejected = []
    for record in scan(topics.rejected):
        dlq = RejectedRecord.from_avro(codecs.rejected.decode(record.value))
        source = bus.header(record, bus.HEADER_SOURCE)
        raw_partition = _int_header(record, "__connect.errors.partition")
        raw_offset = _int_header(record, "__connect.errors.offset")
        position = None if raw_partition is None or raw_offset is None else (raw_partition, raw_offset)
        from_connector = dlq.event is None and (
            position is None or any(v.rule_id == _CONNECTOR_DLQ_RULE for v in dlq.violations)
        )
        rejected.append(
            Judged(
                "rejected",
                record.partition,
                record.offset,
                record.timestamp,
                source,
                _registrar(source, dlq.event),
                dlq.event,
                dlq.violations,
                None if from_connector else position,
                from_connector,
            )
        )
    if outside:
        _LOGGER.warning(
            "%s: %d records inside the month's offset windows carry timestamps outside the month "
            "(push time went backwards within a partition); they are counted with the window",
            month,
            outside,
        )
    return MonthRecords(month, tuple(raw), tuple(valid), tuple(rejected), outside)


# --------------------------------------------------------------------------------------------------
# Building the metrics


def report_dir(settings: Settings) -> Path:
    """Where the monthly reports go: ``<output_dir>/reports``."""
    from regsync.jobs import output_dir

    return output_dir(settings) / "reports"


def build_metrics(*, settings: Settings, services: Services, topics: Topics, month: str) -> MonthlyMetrics:
    """Gather the month's report figures (see the module docstring) and record its headline figures."""
    from regsync.load import month_bounds
    from sink.store import create_engine, upgrade

    tz = settings.timezone
    start, end = month_bounds(month, tz)  # fails in one line on a malformed month
    records = read_month(services.bootstrap_servers, services.registry_url, topics, month, tz)
    upgrade(services.database_url)  # roster and filings tables exist even before the first load
    engine = create_engine(services.database_url)
    try:
        recon = _reconciliation(records, _configured_registrars(settings))
        timeliness, late = _timeliness(records, tz)
        cross = _cross_registrar(engine, records)
        on_time = sum(t.pushed_in_month for t in timeliness if t.is_total)
        registrations = sum(t.registrations for t in timeliness if t.is_total)
        _record_headline(
            engine,
            month=month,
            valid_topic=topics.valid,
            recon=recon,
            registrations=registrations,
            pushed_in_month=on_time,
            late_pushes=len(late),
            cross_registrar=len(cross),
        )
        out = report_dir(settings)
        return MonthlyMetrics(
            month=month,
            generated_at=datetime.now(UTC),
            timezone=tz,
            reconciliation=recon,
            volumes_by_registrar=_volumes_by_registrar(records),
            volumes_by_county=_volumes_by_county(records),
            rejection_reasons=_rejection_reasons(records),
            warnings=_warnings(records),
            timeliness=timeliness,
            cross_registrar=cross,
            late_pushes=late,
            trend=_trend(engine, month, topics.valid),
            gx_suites=_gx_suites(engine, month, out),
            dlq_replays=_replays(services.database_url, records, start, end),
            filing_gap=_filing_gap(engine, (end - timedelta(days=1)).date()),
            timeliness_threshold=settings.timeliness_threshold,
        )
    finally:
        engine.dispose()


def write_month_report(*, settings: Settings, services: Services, topics: Topics, month: str) -> Path:
    """Build the month's metrics and write ``<output_dir>/reports/audit-<month>.html``; returns its path."""
    from quality.report import write_report

    metrics = build_metrics(settings=settings, services=services, topics=topics, month=month)
    return write_report(metrics, report_dir(settings))


def _configured_registrars(settings: Settings) -> set[Registrar]:
    """Registrars whose source is configured: listed even in a month they sent nothing (a finding)."""
    registrars = source_registrars()
    return {
        registrars[name]
        for name, field in _SOURCE_SETTINGS.items()
        if getattr(settings.sources, field, None) not in (None, "") and name in registrars
    }


def _reconciliation(records: MonthRecords, configured: Iterable[Registrar]) -> list[ReconRow]:
    counts: dict[Registrar, Counter[str]] = defaultdict(Counter)
    for registrar in configured:
        counts.setdefault(registrar, Counter())
    unattributed = 0
    for raw in records.raw:
        if raw.registrar is None:
            unattributed += 1
        else:
            counts[raw.registrar]["extracted"] += 1
    for judged in records.rejected + records.valid:
        if judged.registrar is None:
            unattributed += 1
            continue
        kind = "connector_dlq" if judged.connector_dlq else judged.verdict
        counts[judged.registrar][kind] += 1
    if unattributed:
        _LOGGER.warning(
            "%s: %d records name no known registrar (no decodable event, unknown source header); "
            "they are left out of the reconciliation",
            records.month,
            unattributed,
        )
    return [
        ReconRow(r, c["extracted"], c["accepted"], c["rejected"], c["connector_dlq"])
        for r in Registrar
        if (c := counts.get(r)) is not None
    ]


def _volumes_by_registrar(records: MonthRecords) -> dict[Registrar, int]:
    counts = Counter(r.registrar for r in records.raw if r.registrar is not None)
    return {r: counts[r] for r in Registrar if r in counts}


def _county_of(event: RegistrationEvent) -> str:
    from sink.fold import event_county

    return event_county(event) or UNRESOLVED_COUNTY_CODE


def _county_name(code: str) -> str:
    from schemas.divisions import lookup

    if code == UNRESOLVED_COUNTY_CODE:
        return "县区未定位"
    division = lookup(code)
    return division.name if division is not None else "未知区划"


def _volumes_by_county(records: MonthRecords) -> list[CountyVolume]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for judged in records.valid:
        assert judged.event is not None
        event = judged.event
        kind = (
            "registrations"
            if event.event_type in REGISTRATION_TYPES
            else "deregistrations"
            if event.event_type in DEREGISTRATION_TYPES
            else "changes"
        )
        county = counts[_county_of(event)]
        county[kind] += 1
        county["valid"] += 1
    for judged in records.gate_rejected:
        if judged.event is not None:
            counts[_county_of(judged.event)]["rejected"] += 1
    order = sorted(counts, key=lambda code: (code == UNRESOLVED_COUNTY_CODE, code))
    return [
        CountyVolume(
            code,
            _county_name(code),
            counts[code]["registrations"],
            counts[code]["changes"],
            counts[code]["deregistrations"],
            counts[code]["valid"],
            counts[code]["rejected"],
        )
        for code in order
    ]


def _rule_counts(counts: Counter[str], examples: Mapping[str, RuleViolation]) -> list[RuleCount]:
    """Counts in descending order, worded by the catalog (or by the finding itself if uncatalogued)."""
    from quality.rules import rule

    rows = []
    for rule_id, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if rule_id == _CONNECTOR_DLQ_RULE:
            rows.append(RuleCount(rule_id, Severity.REJECT, _CONNECTOR_DLQ_ZH, _CONNECTOR_DLQ_EN, count))
            continue
        try:
            rows.append(RuleCount.of(rule(rule_id), count))
        except KeyError:  # a rule retired from the catalog, or another producer's: its own words
            seen = examples[rule_id]
            rows.append(
                RuleCount(
                    rule_id, seen.severity, mask_text(seen.message_zh), mask_text(seen.message_en), count
                )
            )
    return rows


def _rejection_reasons(records: MonthRecords) -> list[RuleCount]:
    counts: Counter[str] = Counter()
    examples: dict[str, RuleViolation] = {}
    for judged in records.gate_rejected:
        rejecting = [v for v in judged.violations if v.severity is Severity.REJECT] or list(judged.violations)
        for violation in rejecting:
            examples.setdefault(violation.rule_id, violation)
        counts.update({v.rule_id for v in rejecting})
    if records.connector_dlq:
        counts[_CONNECTOR_DLQ_RULE] += len(records.connector_dlq)
    return _rule_counts(counts, examples)


def _warnings(records: MonthRecords) -> list[RuleCount]:
    counts: Counter[str] = Counter()
    examples: dict[str, RuleViolation] = {}
    for judged in records.valid:
        warned = [v for v in judged.violations if v.severity is Severity.WARN]
        for violation in warned:
            examples.setdefault(violation.rule_id, violation)
        counts.update({v.rule_id for v in warned})
    return _rule_counts(counts, examples)


def _month_index(year: int, month: int) -> int:
    return year * 12 + month - 1


def _timeliness(records: MonthRecords, tz: str) -> tuple[list[Timeliness], list[LatePush]]:
    """Registrations pushed in M: how many in their own registration month, per registrar and county.

    Mirrors :func:`quality.expectations.pushed_in_registration_month` (the event date's calendar
    month against the push instant's month in ``tz``) without importing Great Expectations. The push
    instant is the Kafka timestamp: a replayed record is pushed when it is replayed.
    """
    zone = ZoneInfo(tz)
    totals: dict[Registrar, list[int]] = defaultdict(lambda: [0, 0])
    by_county: dict[tuple[Registrar, str], list[int]] = defaultdict(lambda: [0, 0])
    late: list[LatePush] = []
    for judged in records.valid:
        event = judged.event
        if event is None or event.event_type not in REGISTRATION_TYPES:
            continue
        pushed = datetime.fromtimestamp(judged.timestamp_ms / 1000, UTC)
        local = pushed.astimezone(zone)
        months_late = _month_index(local.year, local.month) - _month_index(
            event.event_date.year, event.event_date.month
        )
        on_time = months_late == 0
        for cell in (totals[event.registrar], by_county[(event.registrar, _county_of(event))]):
            cell[0] += 1
            cell[1] += on_time
        if months_late > 0:
            late.append(
                LatePush(
                    event.institution.uscc,
                    mask_text(event.institution.name),
                    event.registrar,
                    event.event_date,
                    pushed,
                    months_late,
                )
            )
    rows = []
    for registrar in Registrar:
        if registrar not in totals:
            continue
        rows.append(Timeliness.of(registrar, None, *totals[registrar]))
        for (reg, county), (n, on_time) in sorted(by_county.items(), key=lambda kv: kv[0][1]):
            if reg is registrar:
                rows.append(Timeliness.of(registrar, county, n, on_time))
    late.sort(key=lambda p: (-p.months_late, p.event_date, p.uscc))
    return rows, late


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _cross_registrar(engine: sa.Engine, records: MonthRecords) -> list[CrossRegistrar]:
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
                (row["county_code"] if row is not None else None) or _county_of(event),
            )
        )
    return found


# --------------------------------------------------------------------------------------------------
# Trend, GX suites, replays, filing gap


def _record_headline(
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
    from regsync.migrate import ensure

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


def _latest_runs(conn: sa.Connection, months: Sequence[str]) -> list[Mapping[str, Any]]:
    """The latest ``quality_runs`` row of each (month, suite): a re-run replaces the verdict."""
    from quality.gx_results import quality_runs

    rows = conn.execute(
        sa.select(quality_runs)
        .where(quality_runs.c.month.in_(list(months)))
        .order_by(quality_runs.c.month, quality_runs.c.suite, quality_runs.c.started_at)
    ).mappings()
    latest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        latest[(row["month"], row["suite"])] = row
    return list(latest.values())


def _expectation_counts(
    conn: sa.Connection, runs: Sequence[Mapping[str, Any]]
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


def _trend(engine: sa.Engine, month: str, valid_topic: str) -> list[TrendPoint]:
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


def _gx_suites(engine: sa.Engine, month: str, out_dir: Path) -> list[SuiteSummary]:
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


def _replays(database_url: str, records: MonthRecords, start: datetime, end: datetime) -> list[ReplayEntry]:
    """Replays whose records were pushed this month, or that were made (dry runs too) during it.

    The first link is what matters on a replayed history: a replay's own ``at`` is the operator's
    wall clock, while its records carry the as-of push time the month window is cut by.
    """
    from regsync.dlq import replay_log

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


def _filing_gap(engine: sa.Engine, as_of: date) -> GapSummary | None:
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
