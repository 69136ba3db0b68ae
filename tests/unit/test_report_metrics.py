"""The audit report's arithmetic on hand-made months: every figure auditors read, without Kafka."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

from quality import report_metrics as m
from quality.month_records import CONNECTOR_DLQ_RULE, UNRESOLVED_COUNTY_CODE, Judged, MonthRecords, RawRecord
from schemas.events import EventType, Registrar, RegistrationEvent, RuleViolation, Severity
from schemas.examples import canonical_event

BEIJING_MARCH_31_LATE = datetime(2026, 3, 31, 15, 59, 59, tzinfo=UTC)  # 23:59:59 Beijing time
BEIJING_APRIL_1 = datetime(2026, 3, 31, 16, 0, 0, tzinfo=UTC)  # 00:00:00 Beijing time


def _event(
    registrar: Registrar, kind: EventType, on: date, county: str | None, uscc: str
) -> RegistrationEvent:
    base = canonical_event()
    return dataclasses.replace(
        base,
        registrar=registrar,
        event_type=kind,
        event_date=on,
        jurisdiction=None,
        institution=dataclasses.replace(base.institution, county_code=county, uscc=uscc),
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _month(
    events: list[tuple[RegistrationEvent, datetime]], rejected: int = 0, connector_dlq: int = 0
) -> MonthRecords:
    raw, valid, rej = [], [], []
    for offset, (event, pushed) in enumerate(events):
        raw.append(RawRecord(0, offset, _ms(pushed), "src", event.registrar, event))
        valid.append(
            Judged(
                "accepted",
                0,
                offset,
                _ms(pushed),
                "src",
                event.registrar,
                event,
                event.quality_warnings,
                (0, offset),
            )
        )
    for i in range(rejected):
        event = events[0][0]
        offset = len(events) + i
        raw.append(RawRecord(0, offset, _ms(events[0][1]), "src", event.registrar, event))
        violation = RuleViolation(
            "USCC_CHECK_DIGIT", Severity.REJECT, "uscc", "校验码错误", "bad check digit"
        )
        rej.append(
            Judged(
                "rejected", 1, i, _ms(events[0][1]), "src", event.registrar, event, (violation,), (0, offset)
            )
        )
    for i in range(connector_dlq):
        violation = RuleViolation(CONNECTOR_DLQ_RULE, Severity.REJECT, None, "无法读取", "unreadable")
        rej.append(
            Judged("rejected", 1, 100 + i, 0, "src", Registrar.MINZHENG, None, (violation,), None, True)
        )
    return MonthRecords("2026-03", tuple(raw), tuple(valid), tuple(rej))


def test_reconciliation_balances_and_lists_silent_registrars():
    e = _event(Registrar.SHICHANG, EventType.ESTABLISHED, date(2026, 3, 2), "370103", "91370103MA00000001")
    records = _month([(e, BEIJING_MARCH_31_LATE)] * 3, rejected=2, connector_dlq=1)
    rows = {r.registrar: r for r in m.reconciliation(records, [Registrar.BIANZHI])}
    shichang = rows[Registrar.SHICHANG]
    assert (shichang.extracted, shichang.valid, shichang.rejected) == (5, 3, 2)
    assert rows[Registrar.BIANZHI].extracted == 0  # configured but silent: still a row (a finding)
    assert rows[Registrar.MINZHENG].connector_dlq == 1


def test_rejection_reasons_count_records_and_the_connector_dlq():
    e = _event(Registrar.SHICHANG, EventType.ESTABLISHED, date(2026, 3, 2), "370103", "91370103MA00000001")
    reasons = {r.rule_id: r.count for r in m.rejection_reasons(_month([(e, BEIJING_MARCH_31_LATE)], 2, 1))}
    assert reasons == {"USCC_CHECK_DIGIT": 2, CONNECTOR_DLQ_RULE: 1}


def test_timeliness_at_the_beijing_month_boundary():
    on_time = _event(
        Registrar.MINZHENG, EventType.ESTABLISHED, date(2026, 3, 31), "441802", "52441802MJ0000001X"
    )
    late = _event(
        Registrar.MINZHENG, EventType.ESTABLISHED, date(2026, 3, 31), "441802", "52441802MJ0000002X"
    )
    rows, late_pushes = m.timeliness(
        _month([(on_time, BEIJING_MARCH_31_LATE), (late, BEIJING_APRIL_1)]), "Asia/Shanghai"
    )
    total = next(r for r in rows if r.county_code is None)
    assert (total.registrations, total.pushed_in_month) == (2, 1)
    assert [p.uscc for p in late_pushes] == ["52441802MJ0000002X"]
    assert late_pushes[0].months_late == 1
    # The same instants read in UTC are both in March: the zone decides.
    rows_utc, _ = m.timeliness(_month([(on_time, BEIJING_MARCH_31_LATE), (late, BEIJING_APRIL_1)]), "UTC")
    assert next(r for r in rows_utc if r.county_code is None).pushed_in_month == 2


def test_changes_are_not_registrations_in_timeliness():
    change = _event(Registrar.BIANZHI, EventType.CHANGED, date(2026, 1, 5), "370103", "12370103MB0000001X")
    rows, late = m.timeliness(_month([(change, BEIJING_APRIL_1)]), "Asia/Shanghai")
    assert rows == [] and late == []


def test_volumes_by_county_put_unresolved_last():
    a = _event(Registrar.SHICHANG, EventType.ESTABLISHED, date(2026, 3, 2), "370103", "91370103MA00000001")
    b = _event(Registrar.SHICHANG, EventType.DEREGISTERED, date(2026, 3, 2), None, "91370103MA00000002")
    c = _event(Registrar.SHICHANG, EventType.CHANGED, date(2026, 3, 2), "370103", "91370103MA00000003")
    volumes = m.volumes_by_county(
        _month([(a, BEIJING_MARCH_31_LATE), (b, BEIJING_MARCH_31_LATE), (c, BEIJING_MARCH_31_LATE)])
    )
    assert [v.county_code for v in volumes] == ["370103", UNRESOLVED_COUNTY_CODE]
    first = volumes[0]
    assert (first.registrations, first.changes, first.deregistrations, first.valid) == (1, 1, 0, 2)
    assert volumes[1].deregistrations == 1
    assert m.county_name(UNRESOLVED_COUNTY_CODE) == "县区未定位"


def test_warnings_count_each_rule_once_per_event():
    e = canonical_event()  # carries one warning
    assert e.quality_warnings
    counts = {r.rule_id: r.count for r in m.warnings(_month([(e, BEIJING_MARCH_31_LATE)] * 2))}
    assert counts == {e.quality_warnings[0].rule_id: 2}
