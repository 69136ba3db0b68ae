"""The audit report's arithmetic over one month's records: pure functions, no I/O.

Each function turns a :class:`~quality.month_records.MonthRecords` into rows of
:mod:`quality.report_model`; the composition root gathers the records and the history, the renderer
draws the rows. Kept apart from both so every figure the auditors read is unit-tested on its own.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from quality.month_records import (
    CONNECTOR_DLQ_EN,
    CONNECTOR_DLQ_RULE,
    CONNECTOR_DLQ_ZH,
    DEREGISTRATION_TYPES,
    REGISTRATION_TYPES,
    UNRESOLVED_COUNTY_CODE,
    MonthRecords,
)
from quality.report_model import CountyVolume, LatePush, ReconRow, RuleCount, Timeliness
from schemas.events import Registrar, RegistrationEvent, RuleViolation, Severity, event_county
from schemas.masking import mask_text

__all__ = [
    "county_name",
    "county_of",
    "reconciliation",
    "rejection_reasons",
    "timeliness",
    "volumes_by_county",
    "volumes_by_registrar",
    "warnings",
]

_LOGGER = logging.getLogger(__name__)


def reconciliation(records: MonthRecords, configured: Iterable[Registrar]) -> list[ReconRow]:
    """Extracted = valid + rejected per registrar; configured registrars appear even when silent."""
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


def timeliness(records: MonthRecords, tz: str) -> tuple[list[Timeliness], list[LatePush]]:
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
        months_late = month_index(local.year, local.month) - month_index(
            event.event_date.year, event.event_date.month
        )
        on_time = months_late == 0
        for cell in (totals[event.registrar], by_county[(event.registrar, county_of(event))]):
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
        for (reg, county), (n, in_month) in sorted(by_county.items(), key=lambda kv: kv[0][1]):
            if reg is registrar:
                rows.append(Timeliness.of(registrar, county, n, in_month))
    late.sort(key=lambda p: (-p.months_late, p.event_date, p.uscc))
    return rows, late
