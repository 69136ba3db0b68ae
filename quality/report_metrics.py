"""The audit report's arithmetic over one month's records: pure functions, no I/O.

Each function turns a :class:`~quality.month_records.MonthRecords` into rows of
:mod:`quality.report_model`; the composition root gathers the records and the history, the renderer
draws the rows. Kept apart from both so every figure the auditors read is unit-tested on its own.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from quality.month_records import (
    CONNECTOR_DLQ_EN,
    CONNECTOR_DLQ_RULE,
    CONNECTOR_DLQ_ZH,
    DEREGISTRATION_TYPES,
    LATE_PUSH_RULE,
    REGISTRATION_TYPES,
    UNRESOLVED_COUNTY_CODE,
    MonthRecords,
    Pushed,
)
from quality.report_model import (
    CountyVolume,
    LatePush,
    PushLateness,
    ReconRow,
    RejectedRow,
    RuleCount,
    Timeliness,
)
from schemas.events import Registrar, RegistrationEvent, RuleViolation, Severity, event_county
from schemas.masking import mask_text

__all__ = [
    "county_name",
    "county_of",
    "late_warnings",
    "months_late",
    "push_lateness",
    "reconciliation",
    "registration_timeliness",
    "rejected_rows",
    "rejection_reasons",
    "volumes_by_county",
    "volumes_by_registrar",
    "warnings",
]

_LOGGER = logging.getLogger(__name__)


def reconciliation(records: MonthRecords, configured: Iterable[Registrar]) -> list[ReconRow]:
    """Extracted = valid + rejected per registrar; configured registrars appear even when silent.

    Records that name no known registrar (no decodable event and an unknown ``regsync.source``
    header) get their own row at the end, with the source values seen, so they are counted, not lost.
    """
    counts: dict[Registrar | None, Counter[str]] = defaultdict(Counter)
    for registrar in configured:
        counts.setdefault(registrar, Counter())
    unknown_sources: set[str] = set()
    for raw in records.raw:
        counts[raw.registrar]["extracted"] += 1
        if raw.registrar is None:
            unknown_sources.add(raw.source or "(none)")
    for judged in records.rejected + records.valid:
        kind = "connector_dlq" if judged.connector_dlq else judged.verdict
        counts[judged.registrar][kind] += 1
        if judged.registrar is None:
            unknown_sources.add(judged.source or "(none)")
    if None in counts:
        _LOGGER.warning(
            "%s: %d records name no known registrar (sources %s); reported on their own row",
            records.month,
            sum(counts[None].values()),
            ", ".join(sorted(unknown_sources)),
        )
    rows = [
        ReconRow(r, c["extracted"], c["accepted"], c["rejected"], c["connector_dlq"])
        for r in Registrar
        if (c := counts.get(r)) is not None
    ]
    if (c := counts.get(None)) is not None:
        rows.append(
            ReconRow(
                None,
                c["extracted"],
                c["accepted"],
                c["rejected"],
                c["connector_dlq"],
                tuple(sorted(unknown_sources)),
            )
        )
    return rows


def volumes_by_registrar(records: MonthRecords) -> dict[Registrar, int]:
    """Raw records per registrar, in the catalog's registrar order."""
    counts = Counter(r.registrar for r in records.raw if r.registrar is not None)
    return {r: counts[r] for r in Registrar if r in counts}


def county_of(event: RegistrationEvent) -> str:
    """The county an event is pushed to, or the unresolved bucket."""
    return event_county(event) or UNRESOLVED_COUNTY_CODE


def county_name(code: str) -> str:
    """The county's name for the report (unresolved and unknown codes said as such)."""
    from schemas.divisions import lookup

    if code == UNRESOLVED_COUNTY_CODE:
        return "县区未定位"
    division = lookup(code)
    return division.name if division is not None else "未知区划"


def volumes_by_county(records: MonthRecords) -> list[CountyVolume]:
    """Valid events by kind and gate rejections, per county the event is pushed to."""
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
        county = counts[county_of(event)]
        county[kind] += 1
        county["valid"] += 1
    for judged in records.gate_rejected:
        if judged.event is not None:
            counts[county_of(judged.event)]["rejected"] += 1
    order = sorted(counts, key=lambda code: (code == UNRESOLVED_COUNTY_CODE, code))
    return [
        CountyVolume(
            code,
            county_name(code),
            counts[code]["registrations"],
            counts[code]["changes"],
            counts[code]["deregistrations"],
            counts[code]["valid"],
            counts[code]["rejected"],
        )
        for code in order
    ]


def rule_counts(counts: Counter[str], examples: Mapping[str, RuleViolation]) -> list[RuleCount]:
    """Counts in descending order, worded by the catalog (or by the finding itself if uncatalogued)."""
    from quality.rules import rule

    rows = []
    for rule_id, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if rule_id == CONNECTOR_DLQ_RULE:
            rows.append(RuleCount(rule_id, Severity.REJECT, CONNECTOR_DLQ_ZH, CONNECTOR_DLQ_EN, count))
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


def rejection_reasons(records: MonthRecords) -> list[RuleCount]:
    """Gate rejections by rejecting rule, once per record; plus the connector DLQ."""
    counts: Counter[str] = Counter()
    examples: dict[str, RuleViolation] = {}
    for judged in records.gate_rejected:
        rejecting = [v for v in judged.violations if v.severity is Severity.REJECT] or list(judged.violations)
        for violation in rejecting:
            examples.setdefault(violation.rule_id, violation)
        counts.update({v.rule_id for v in rejecting})
    if records.connector_dlq:
        counts[CONNECTOR_DLQ_RULE] += len(records.connector_dlq)
    return rule_counts(counts, examples)


def warnings(records: MonthRecords) -> list[RuleCount]:
    """Warn-severity findings on valid events, once per event and rule."""
    counts: Counter[str] = Counter()
    examples: dict[str, RuleViolation] = {}
    for judged in records.valid:
        warned = [v for v in judged.violations if v.severity is Severity.WARN]
        for violation in warned:
            examples.setdefault(violation.rule_id, violation)
        counts.update({v.rule_id for v in warned})
    return rule_counts(counts, examples)


def month_index(year: int, month: int) -> int:
    """Months since year 0, so month differences are one subtraction."""
    return year * 12 + month - 1


def months_late(event_date: date, pushed_at: datetime, zone: ZoneInfo) -> int:
    """Calendar months between the event date's month and the push instant's month in ``zone``.

    The push instant is read in the zone (23:59:59 on the last day in Beijing is still that month,
    00:00:00 the next day is the next month), whatever zone the instant was stamped in (UTC or +08:00).
    """
    local = pushed_at.astimezone(zone)
    return month_index(local.year, local.month) - month_index(event_date.year, event_date.month)


def _scopes(registrar: Registrar, county: str) -> tuple[tuple[Registrar | None, str | None], ...]:
    """The rows an item counts in: overall, its registrar's, its county's."""
    return ((None, None), (registrar, None), (None, county))


def _scope_order(
    keys: Iterable[tuple[Registrar | None, str | None]],
) -> list[tuple[Registrar | None, str | None]]:
    """Overall first, then registrars in catalog order, then counties by code (unresolved last)."""
    order = {r: i for i, r in enumerate(Registrar)}
    return sorted(
        keys,
        key=lambda k: (
            0 if k == (None, None) else 1 if k[0] is not None else 2,
            order[k[0]] if k[0] is not None else 0,
            (k[1] == UNRESOLVED_COUNTY_CODE, k[1] or ""),
        ),
    )


def _late_push(item: Pushed, late_by: int) -> LatePush:
    return LatePush(
        item.uscc,
        mask_text(item.name),
        item.registrar,
        item.event_date,
        item.pushed_at,
        late_by,
        item.event_type,
        item.county_code,
        item.warned,
    )


def registration_timeliness(
    pushed: Iterable[Pushed], month: str, tz: str
) -> tuple[list[Timeliness], list[LatePush]]:
    """Measure (a): registrations *dated* in ``month``, and how many were pushed within it.

    ``pushed`` may hold any events pushed in any month (the month's window plus the store's loaded
    months); registrations dated in ``month`` are picked out, each event id once. A registration
    pushed in M+1 or later is a miss (returned, latest-pushed first). The figure is provisional while
    M+1 is not loaded — the caller knows which months are. Mirrors the rule of
    :func:`quality.expectations.pushed_in_registration_month` without importing GX.
    """
    zone = ZoneInfo(tz)
    year, mon = (int(x) for x in month.split("-"))
    seen: set[str] = set()
    cells: dict[tuple[Registrar | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
    misses: list[LatePush] = []
    for item in pushed:
        if item.event_type not in REGISTRATION_TYPES or item.event_id in seen:
            continue
        if (item.event_date.year, item.event_date.month) != (year, mon):
            continue
        seen.add(item.event_id)
        late_by = months_late(item.event_date, item.pushed_at, zone)
        for key in _scopes(item.registrar, item.county_code):
            cells[key][0] += 1
            cells[key][1] += late_by <= 0
        if late_by > 0:
            misses.append(_late_push(item, late_by))
    rows = [Timeliness.of(r, c, *cells[(r, c)]) for r, c in _scope_order(cells)]
    misses.sort(key=lambda p: (p.event_date, p.uscc, p.pushed_at))
    return rows, misses


def push_lateness(pushed: Iterable[Pushed], tz: str) -> tuple[list[PushLateness], list[LatePush]]:
    """Measure (b): the pushes received in the month (every event type), and which were late.

    ``pushed`` is the month's valid window. Late is the loader's and the packages' rule (event date's
    month before the push month in ``tz``), so the count equals ``load_manifests.late`` and the
    packages' 逾期推送. Returns the rows and the late pushes (most months late first).
    """
    zone = ZoneInfo(tz)
    cells: dict[tuple[Registrar | None, str | None], Counter[str]] = defaultdict(Counter)
    late: list[LatePush] = []
    for item in pushed:
        late_by = months_late(item.event_date, item.pushed_at, zone)
        registration = item.event_type in REGISTRATION_TYPES
        for key in _scopes(item.registrar, item.county_code):
            cell = cells[key]
            cell["pushes"] += 1
            cell["late"] += late_by > 0
            cell["registrations"] += registration
            cell["registrations_late"] += registration and late_by > 0
        if late_by > 0:
            late.append(_late_push(item, late_by))
    rows = [
        PushLateness(
            r,
            c,
            cells[(r, c)]["pushes"],
            cells[(r, c)]["late"],
            cells[(r, c)]["registrations"],
            cells[(r, c)]["registrations_late"],
        )
        for r, c in _scope_order(cells)
    ]
    late.sort(key=lambda p: (-p.months_late, p.event_date, p.uscc))
    return rows, late


def late_warnings(records: MonthRecords) -> int:
    """Valid events of the month carrying the gate's ``LATE_PUSH`` warning."""
    return sum(any(v.rule_id == LATE_PUSH_RULE for v in j.violations) for j in records.valid)


def rejected_rows(records: MonthRecords) -> list[RejectedRow]:
    """Every rejected record of the month with all its violations, messages masked (the appendix)."""
    rows = []
    for judged in records.rejected:
        event = judged.event
        rows.append(
            RejectedRow(
                uscc=event.institution.uscc if event is not None else None,
                name=mask_text(event.institution.name) if event is not None else None,
                registrar=judged.registrar,
                source=judged.source,
                county_code=county_of(event) if event is not None else None,
                event_type=event.event_type if event is not None else None,
                pushed_at=datetime.fromtimestamp(judged.timestamp_ms / 1000, UTC),
                violations=tuple((v.rule_id, v.severity, mask_text(v.message_zh)) for v in judged.violations),
                connector_dlq=judged.connector_dlq,
            )
        )
    order = {r: i for i, r in enumerate(Registrar)}
    rows.sort(key=lambda r: (r.rule_ids[:1], order.get(r.registrar, 99) if r.registrar else 99, r.uscc or ""))
    return rows
