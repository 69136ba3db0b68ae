"""The audit report's arithmetic on hand-made months: every figure auditors read, without Kafka."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from quality import report_metrics as m
from quality.month_records import (
    CONNECTOR_DLQ_RULE,
    UNRESOLVED_COUNTY_CODE,
    Judged,
    MonthRecords,
    Pushed,
    RawRecord,
)
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


def _pushed(
    uscc: str,
    on: date,
    at: datetime,
    *,
    kind: EventType = EventType.ESTABLISHED,
    registrar: Registrar = Registrar.MINZHENG,
    county: str = "441802",
    warned: bool = False,
) -> Pushed:
    return Pushed(f"id-{uscc}-{at.isoformat()}", uscc, "某某托育园", registrar, kind, on, county, at, warned)


BEIJING = ZoneInfo("Asia/Shanghai")


def test_measure_a_counts_registrations_dated_in_the_month_at_the_beijing_boundary():
    last_second = _pushed("A", date(2026, 3, 31), BEIJING_MARCH_31_LATE)  # 23:59:59 Beijing: in March
    midnight = _pushed("B", date(2026, 3, 31), BEIJING_APRIL_1)  # 00:00:00 Beijing 1 April: a miss
    # A UTC-stamped source: the same instant written in UTC and in +08:00 is one instant.
    utc_stamped = _pushed("C", date(2026, 3, 15), datetime(2026, 3, 31, 16, 30, tzinfo=UTC))
    local_stamped = _pushed("D", date(2026, 3, 15), datetime(2026, 3, 31, 23, 30, tzinfo=BEIJING))
    february = _pushed(
        "E", date(2026, 2, 27), datetime(2026, 3, 2, 2, tzinfo=UTC)
    )  # dated Feb: not (a) of March
    change = _pushed("F", date(2026, 3, 3), BEIJING_APRIL_1, kind=EventType.CHANGED)  # not a registration
    rows, misses = m.registration_timeliness(
        [last_second, midnight, utc_stamped, local_stamped, february, change, last_second],
        "2026-03",
        "Asia/Shanghai",
    )
    total = next(r for r in rows if r.is_total)
    assert (total.registrations, total.pushed_in_month, total.pushed_later) == (4, 2, 2)  # duplicates once
    assert sorted(p.uscc for p in misses) == ["B", "C"]
    assert all(p.months_late == 1 for p in misses)
    assert [r.county_code for r in rows if not r.is_total and r.registrar is None] == ["441802"]
    # In UTC, 16:30 on 31 March is still March: the zone decides, not the stamp.
    utc_rows, _ = m.registration_timeliness([utc_stamped, midnight], "2026-03", "UTC")
    assert next(r for r in utc_rows if r.is_total).pushed_in_month == 2


def test_measure_a_of_february_sees_the_march_push():
    """The issue's case: a February registration pushed in March counts against February, not March."""
    february = _pushed("E", date(2026, 2, 27), datetime(2026, 3, 2, 2, tzinfo=UTC))
    rows, misses = m.registration_timeliness([february], "2026-02", "Asia/Shanghai")
    assert next(r for r in rows if r.is_total).share == 0.0 and [p.uscc for p in misses] == ["E"]
    march_rows, _ = m.registration_timeliness([february], "2026-03", "Asia/Shanghai")
    assert march_rows == []


def test_measure_b_counts_every_push_of_the_month_and_flags_late_ones():
    pushes = [
        _pushed("A", date(2026, 3, 31), BEIJING_MARCH_31_LATE),  # on time
        _pushed(
            "B", date(2026, 2, 28), datetime(2026, 2, 28, 16, 0, tzinfo=UTC), warned=True
        ),  # 1 Mar 00:00: late
        _pushed(
            "C", date(2026, 1, 5), datetime(2026, 3, 10, tzinfo=UTC), kind=EventType.CHANGED, warned=True
        ),
        _pushed(
            "D", date(2026, 2, 20), datetime(2026, 3, 10, tzinfo=UTC), registrar=Registrar.SHICHANG
        ),  # replay
    ]
    rows, late = m.push_lateness(pushes, "Asia/Shanghai")
    total = next(r for r in rows if r.is_total)
    assert (total.pushes, total.late, total.registrations, total.registrations_late) == (4, 3, 3, 2)
    assert total.late_share == 0.75 and total.on_time_share == 0.25
    assert [p.uscc for p in late] == ["C", "D", "B"]  # most months late first, then event date
    assert [p.uscc for p in late if not p.warned] == ["D"]  # late by push time, no LATE_PUSH: a replay
    by_registrar = {r.registrar: (r.pushes, r.late) for r in rows if r.is_registrar}
    assert by_registrar == {Registrar.MINZHENG: (3, 2), Registrar.SHICHANG: (1, 1)}


def test_month_records_give_pushes_with_the_kafka_time_and_the_late_warning():
    e = _event(Registrar.MINZHENG, EventType.ESTABLISHED, date(2026, 2, 27), "441802", "52441802MJ0000002X")
    warning = RuleViolation("LATE_PUSH", Severity.WARN, "extracted_at", "晚", "late")
    records = _month([(dataclasses.replace(e, quality_warnings=(warning,)), BEIJING_APRIL_1)])
    (pushed,) = records.pushed()
    assert pushed.pushed_at == BEIJING_APRIL_1 and pushed.warned and pushed.county_code == "441802"
    assert m.late_warnings(records) == 1


def test_rejected_rows_carry_every_violation_masked():
    e = _event(Registrar.SHICHANG, EventType.ESTABLISHED, date(2026, 3, 2), "370103", "91370103MA00000001")
    rows = m.rejected_rows(_month([(e, BEIJING_MARCH_31_LATE)], rejected=1, connector_dlq=1))
    assert [r.rule_ids for r in rows] == [("SOURCE_UNREADABLE",), ("USCC_CHECK_DIGIT",)]
    gate = rows[1]
    assert gate.uscc == "91370103MA00000001" and gate.county_code == "370103"
    assert rows[0].uscc is None and rows[0].connector_dlq


def test_unknown_registrar_is_its_own_reconciliation_row():
    e = _event(Registrar.SHICHANG, EventType.ESTABLISHED, date(2026, 3, 2), "370103", "91370103MA00000001")
    records = _month([(e, BEIJING_MARCH_31_LATE)])
    stray = RawRecord(0, 99, _ms(BEIJING_MARCH_31_LATE), "legacy-ftp", None, None)
    records = dataclasses.replace(records, raw=(*records.raw, stray))
    rows = m.reconciliation(records, [])
    assert rows[-1].registrar is None and rows[-1].sources == ("legacy-ftp",)
    assert (rows[-1].extracted, rows[-1].valid, rows[-1].rejected) == (1, 0, 0)
    assert not rows[-1].balanced


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
