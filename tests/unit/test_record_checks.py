"""The per-record gate: one passing and one failing event per rule, severity semantics, configuration.

Every case starts from one clean event (:func:`clean`) and changes the least that makes a rule fire, so
a failing case must raise exactly that rule and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from quality import record_checks
from quality.record_checks import (
    CHILDCARE_EXEMPT_EVENTS,
    GateConfig,
    evaluate,
    evaluate_many,
    schema_violation,
)
from quality.rules import REGISTRAR_PREFIXES, rule
from schemas import childcare, uscc
from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    LegalRepresentative,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    Severity,
)

MINZHENG_CODE = uscc.make_uscc("5", "2", "441800", "MA0K1234")
SHICHANG_CODE = uscc.make_uscc("9", "1", "441800", "MA0K1234")
FAMILY_CODE = uscc.make_uscc("9", "2", "441800", "MA0K1234")
PUBLIC_CODE = uscc.make_uscc("1", "2", "441800", "MA0K1234")
# Registrar code B does not exist; the check digit is right, so only the format finding is raised.
UNKNOWN_REGISTRAR_CODE = "B" + MINZHENG_CODE[1:17] + uscc.compute_check_digit("B" + MINZHENG_CODE[1:17])
ADDRESS = "广东省清远市清城区育才路12号"
FULL_ID = "441802199001011234"
STATED = CountyResolution(CountyResolutionMethod.STATED, 0.95)


def clean(**changes: Any) -> RegistrationEvent:
    """A 民政 ESTABLISHED event that passes every rule; ``inst=dict(...)`` changes the institution."""
    inst_changes = changes.pop("inst", {})
    institution = Institution(
        uscc=MINZHENG_CODE,
        name="清城阳光托育园",
        legal_form=LegalForm.PRIVATE_NON_ENTERPRISE,
        profit_nature=ProfitNature.NON_PROFIT,
        address=ADDRESS,
        business_scope="托育服务；婴幼儿照护服务（3岁以下）",
        status=InstitutionStatus.ACTIVE,
        county_code="441802",
        county_resolution=STATED,
        legal_representative=LegalRepresentative("王伟", "441802********1234", True, "138****5678"),
        registered_capital=Decimal("50"),
        capacity=40,
    )
    event = RegistrationEvent.build(
        event_type=EventType.ESTABLISHED,
        registrar=Registrar.MINZHENG,
        event_date=date(2026, 1, 10),
        extracted_at=datetime(2026, 1, 12, 2, 0, tzinfo=UTC),
        institution=replace(institution, **inst_changes),
        lineage=Lineage("minzheng", "MZ0000001", "1", "test"),
    )
    return replace(event, **changes)


def with_bad_org_check(code: str) -> str:
    """Break position 17 only: re-compute position 18 so the GB 32100 check still passes."""
    wrong = next(ch for ch in "0123456789" if ch != code[16])
    first17 = code[:16] + wrong
    return first17 + uscc.compute_check_digit(first17)


def family(**inst: Any) -> RegistrationEvent:
    return clean(
        registrar=Registrar.SHICHANG,
        inst={
            "uscc": FAMILY_CODE,
            "name": "清城阳光家庭托育点",
            "legal_form": LegalForm.INDIVIDUAL_BUSINESS,
            "business_scope": "家庭托育服务",
            **inst,
        },
    )


# (rule id, passing event, failing event, a fragment both messages must show)
CASES: list[tuple[str, RegistrationEvent, RegistrationEvent, str]] = [
    ("USCC_FORMAT", clean(), clean(inst={"uscc": MINZHENG_CODE[:17]}), MINZHENG_CODE[:17]),
    ("USCC_FORMAT", clean(), clean(inst={"uscc": MINZHENG_CODE[:17] + "I"}), MINZHENG_CODE[:17] + "I"),
    ("USCC_FORMAT", clean(), clean(inst={"uscc": UNKNOWN_REGISTRAR_CODE}), UNKNOWN_REGISTRAR_CODE),
    (
        "USCC_CHECK_DIGIT",
        clean(),
        clean(inst={"uscc": MINZHENG_CODE[:17] + ("0" if MINZHENG_CODE[17] != "0" else "1")}),
        MINZHENG_CODE[:17],
    ),
    (
        "USCC_ORG_CHECK_DIGIT",
        clean(),
        clean(inst={"uscc": with_bad_org_check(MINZHENG_CODE)}),
        with_bad_org_check(MINZHENG_CODE),
    ),
    (
        "USCC_LEGACY_PILOT",
        clean(registrar=Registrar.SHICHANG, inst={"uscc": "91350100M000100Y43"}),
        clean(registrar=Registrar.SHICHANG, inst={"uscc": "91350100M0001TGQXM"}),
        "91350100M0001TGQXM",
    ),
    ("USCC_REGISTRAR_PREFIX", clean(), clean(inst={"uscc": SHICHANG_CODE}), "91"),
    (
        "USCC_REGISTRAR_PREFIX",
        clean(registrar=Registrar.SHICHANG, inst={"uscc": SHICHANG_CODE}),
        clean(registrar=Registrar.SHICHANG, inst={"uscc": uscc.make_uscc("9", "3", "441800", "MA0K1234")}),
        "93",
    ),
    (
        "USCC_REGISTRAR_PREFIX",
        clean(registrar=Registrar.BIANZHI, inst={"uscc": PUBLIC_CODE}),
        clean(registrar=Registrar.BIANZHI, inst={"uscc": uscc.make_uscc("1", "1", "441800", "MA0K1234")}),
        "11",
    ),
    (
        "DIVISION_UNKNOWN",
        clean(),
        clean(inst={"county_code": None, "address": "济南高新技术产业开发区育才路12号"}),
        "济南高新技术产业开发区",
    ),
    (
        "DIVISION_UNKNOWN",
        clean(),
        clean(inst={"county_code": "370171", "address": "济南高新技术产业开发区育才路12号"}),
        "370171",
    ),
    (
        "DIVISION_ABOLISHED_MAPPED",
        clean(inst={"county_code": "370116", "address": "山东省济南市莱芜区育才路12号"}),
        clean(inst={"county_code": "371202", "address": "山东省济南市莱芜区育才路12号"}),
        "371202",
    ),
    (
        "DIVISION_ABOLISHED_MAPPED",
        clean(inst={"county_code": "370116", "address": "山东省济南市莱芜区育才路12号"}),
        clean(inst={"county_code": "370116", "address": "山东省莱芜市莱城区育才路12号"}),
        "莱城区",
    ),
    ("DIVISION_RESOLVED_AT_GATE", clean(), clean(inst={"county_code": None}), "清远市清城区"),
    ("DIVISION_RESOLVED_AT_GATE", clean(), clean(inst={"county_code": "441800"}), "441800"),
    (
        "DIVISION_LOW_CONFIDENCE",
        clean(inst={"county_resolution": CountyResolution(CountyResolutionMethod.ADDRESS, 0.7)}),
        clean(inst={"county_resolution": CountyResolution(CountyResolutionMethod.ADDRESS, 0.4)}),
        "0.40",
    ),
    (
        "NOT_CHILDCARE",
        clean(),
        clean(inst={"name": "清城阳光学生托管中心", "business_scope": "学生托管服务；午托、晚托"}),
        "学生托管服务",
    ),
    (
        # A weak include in the scope is undone by an exclusion in the name: the scope alone is not enough.
        "NOT_CHILDCARE",
        clean(inst={"name": "清城阳光看护中心", "business_scope": "全日托、半日托"}),
        clean(inst={"name": "清城阳光学生托管中心", "business_scope": "全日托、半日托"}),
        "学生托管中心",
    ),
    (
        "EVENT_DATE_FUTURE",
        clean(event_date=date(2026, 1, 12)),
        clean(event_date=date(2026, 1, 13)),
        "2026-01-13",
    ),
    ("LATE_PUSH", clean(), clean(event_date=date(2025, 12, 31)), "2025-12-31"),
    (
        "LEGAL_REP_ID_INVALID",
        clean(),
        clean(inst={"legal_representative": LegalRepresentative("王伟", "441802********1234", False)}),
        "441802********1234",
    ),
    (
        "CHANGED_FIELDS_MISSING",
        clean(event_type=EventType.CHANGED, changed_fields=(FieldChange("name", "旧名", "清城阳光托育园"),)),
        clean(event_type=EventType.CHANGED),
        "changed_fields",
    ),
    (
        "MOVE_JURISDICTION_MISSING",
        clean(event_type=EventType.MOVED_IN, jurisdiction=JurisdictionMove("441803", "441802")),
        clean(event_type=EventType.MOVED_IN),
        "MOVED_IN",
    ),
    (
        "MOVE_JURISDICTION_MISSING",
        clean(event_type=EventType.MOVED_OUT, jurisdiction=JurisdictionMove(None, "441803")),
        clean(event_type=EventType.MOVED_OUT, jurisdiction=JurisdictionMove(None, " ")),
        "MOVED_OUT",
    ),
    ("FAMILY_CARE_CAPACITY", family(capacity=5), family(capacity=6), "6"),
    (
        "CAPITAL_OUT_OF_RANGE",
        clean(inst={"registered_capital": Decimal("0")}),
        clean(inst={"registered_capital": Decimal("-1")}),
        "-1",
    ),
    (
        "CAPITAL_OUT_OF_RANGE",
        clean(inst={"registered_capital": Decimal("100000")}),
        clean(inst={"registered_capital": Decimal("100000.01")}),
        "100000.01",
    ),
    # Issue 13 item 5: an over-long phone passed with a warning and failed the load on varchar(32).
    (
        "FIELD_TOO_LONG",
        clean(
            inst={"legal_representative": LegalRepresentative("王伟", "441802********1234", True, "1" * 32)}
        ),
        clean(
            inst={"legal_representative": LegalRepresentative("王伟", "441802********1234", True, "1" * 33)}
        ),
        "institution.legal_representative.phone_masked",
    ),
]


def _case_id(case: tuple[str, RegistrationEvent, RegistrationEvent, str]) -> str:
    return f"{case[0]}:{case[3]}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_passing_event_has_no_findings(case):
    _, passing, _, _ = case
    verdict = evaluate(passing)
    assert verdict.violations == ()
    assert verdict.accepted


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_failing_event_raises_exactly_that_rule(case):
    rule_id, _, failing, fragment = case
    verdict = evaluate(failing)
    assert verdict.rule_ids == (rule_id,)
    (violation,) = verdict.violations
    entry = rule(rule_id)
    assert violation.severity is entry.severity
    assert verdict.accepted is (entry.severity is Severity.WARN)
    if entry.field is not None:
        assert violation.field == entry.field
    else:  # a rule over any field names the one it found
        assert violation.field and violation.field in violation.message_en
    assert fragment in violation.message_zh
    assert fragment in violation.message_en
    assert re.search(r"[\u4e00-\u9fff]", violation.message_zh)
    assert violation.message_en.isascii() or re.search(r"[a-z]{4}", violation.message_en)


def test_every_record_rule_evaluated_here_has_a_case():
    # SCHEMA_INVALID: the gate raises it while decoding; SOURCE_UNREADABLE: connectors, before the gate.
    evaluated_elsewhere = {"SCHEMA_INVALID", "SOURCE_UNREADABLE"}
    record_rules = {r.id for r in record_checks.R.RECORD_RULES} - evaluated_elsewhere
    covered = {c[0] for c in CASES} | {"REQUIRED_FIELD"}
    assert record_rules == covered


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("institution.uscc", {"inst": {"uscc": ""}}),
        ("institution.name", {"inst": {"name": "  "}}),
        ("institution.address", {"inst": {"address": ""}}),
        ("institution.business_scope", {"inst": {"business_scope": "\u3000"}}),
        ("event_date", {"event_date": None}),
        ("registrar", {"registrar": None}),
        ("event_type", {"event_type": None}),
    ],
)
def test_required_field_names_the_field(path, change):
    verdict = evaluate(clean(**change))
    assert verdict.rule_ids == ("REQUIRED_FIELD",)
    (violation,) = verdict.violations
    assert violation.field == path
    assert path in violation.message_zh
    assert path in violation.message_en
    assert not verdict.accepted


def test_each_blank_field_is_its_own_finding():
    verdict = evaluate(clean(inst={"name": "", "address": ""}))
    assert [v.field for v in verdict.violations if v.rule_id == "REQUIRED_FIELD"] == [
        "institution.name",
        "institution.address",
    ]


# --------------------------------------------------------------------------------------------------
# Severity semantics and the verdict


def test_warnings_alone_keep_the_record():
    event = clean(
        event_date=date(2025, 12, 31),
        inst={"legal_representative": LegalRepresentative("王伟", "441802********1234", False)},
    )
    verdict = evaluate(event)
    assert verdict.accepted
    assert verdict.rule_ids == ("LATE_PUSH", "LEGAL_REP_ID_INVALID")
    assert verdict.rejections == ()
    assert len(verdict.warnings) == 2


def test_one_rejection_among_warnings_rejects():
    event = clean(event_date=date(2025, 12, 31), inst={"name": ""})
    verdict = evaluate(event)
    assert not verdict.accepted
    assert [v.rule_id for v in verdict.rejections] == ["REQUIRED_FIELD"]
    assert [v.rule_id for v in verdict.warnings] == ["LATE_PUSH"]


def test_findings_come_in_catalog_order():
    event = clean(
        event_date=date(2025, 12, 31),
        inst={"uscc": SHICHANG_CODE, "name": "", "registered_capital": Decimal("-5")},
    )
    order = [r.id for r in record_checks.R.CATALOG]
    ids = list(evaluate(event).rule_ids)
    assert ids == sorted(ids, key=order.index)


def test_abolished_code_is_mapped_forward_and_published():
    event = clean(inst={"county_code": "371202", "address": "山东省济南市莱芜区育才路12号"})
    verdict = evaluate(event)
    assert verdict.accepted
    assert verdict.county_code == "370116"
    published = verdict.apply(event)
    assert published.institution.county_code == "370116"
    assert published.institution.county_resolution == STATED
    assert [w.rule_id for w in published.quality_warnings] == ["DIVISION_ABOLISHED_MAPPED"]
    assert published.event_id == event.event_id


def test_missing_county_is_resolved_from_the_address_by_the_gate():
    verdict = evaluate(clean(inst={"county_code": None}))
    assert verdict.accepted
    assert verdict.county_code == "441802"
    assert verdict.county_resolution == CountyResolution(CountyResolutionMethod.ADDRESS, 0.95)


def test_gate_resolution_can_be_switched_off():
    verdict = evaluate(clean(inst={"county_code": None}), config=GateConfig(resolve_missing_county=False))
    assert verdict.rule_ids == ("DIVISION_UNKNOWN",)
    assert verdict.county_code is None


def test_unroutable_record_has_no_county():
    verdict = evaluate(clean(inst={"county_code": None, "address": ""}))
    assert set(verdict.rule_ids) == {"REQUIRED_FIELD", "DIVISION_UNKNOWN"}
    assert verdict.county_code is None


def test_unchanged_county_is_published_as_is():
    event = clean()
    verdict = evaluate(event)
    assert verdict.county_code == "441802"
    assert verdict.apply(event) == event


def test_a_rejected_verdict_cannot_be_published():
    event = clean(inst={"name": ""})
    with pytest.raises(ValueError, match="rejected"):
        evaluate(event).apply(event)


def test_verdict_is_frozen():
    with pytest.raises(AttributeError):
        evaluate(clean()).accepted = False  # type: ignore[misc]


@pytest.mark.parametrize("event_type", sorted(CHILDCARE_EXEMPT_EVENTS))
def test_events_that_end_childcare_may_carry_any_scope(event_type):
    event = clean(
        event_type=event_type,
        jurisdiction=JurisdictionMove("441802", "441803") if event_type is EventType.MOVED_OUT else None,
        inst={"name": "清城阳光商贸有限公司", "business_scope": "日用百货销售"},
    )
    assert "NOT_CHILDCARE" not in evaluate(event).rule_ids


@pytest.mark.parametrize("event_type", sorted(set(EventType) - CHILDCARE_EXEMPT_EVENTS))
def test_other_events_must_be_childcare(event_type):
    event = clean(
        event_type=event_type,
        jurisdiction=JurisdictionMove("441803", "441802") if event_type is EventType.MOVED_IN else None,
        changed_fields=(FieldChange("business_scope", "a", "b"),),
        inst={"name": "清城阳光商贸有限公司", "business_scope": "日用百货销售"},
    )
    assert "NOT_CHILDCARE" in evaluate(event).rule_ids


def test_kindergarten_with_a_childcare_class_is_childcare():
    event = clean(
        registrar=Registrar.JIAOYU,
        event_type=EventType.CHILDCARE_CLASS_ADDED,
        inst={"name": "清城阳光幼儿园", "business_scope": "学前教育；托班", "uscc": PUBLIC_CODE},
    )
    assert evaluate(event).violations == ()


# --------------------------------------------------------------------------------------------------
# Personal data never leaves in full


def test_resident_id_is_masked_even_if_a_connector_forgot():
    rep = LegalRepresentative("王伟", FULL_ID, False)
    verdict = evaluate(clean(inst={"legal_representative": rep}))
    (violation,) = verdict.violations
    for text in (violation.message_zh, violation.message_en):
        assert FULL_ID not in text
        assert "441802********1234" in text


def test_ids_and_phones_inside_echoed_text_are_masked():
    scope = f"学生托管服务，联系人身份证{FULL_ID}，电话13812345678"
    verdict = evaluate(clean(inst={"business_scope": scope, "name": "托管中心"}))
    (violation,) = verdict.violations
    for text in (violation.message_zh, violation.message_en):
        assert FULL_ID not in text
        assert "13812345678" not in text


def test_schema_violation_masks_its_detail():
    violation = schema_violation(f"field legal_representative.id_number_masked: {FULL_ID!r} is not valid")
    assert violation.rule_id == "SCHEMA_INVALID"
    assert violation.severity is Severity.REJECT
    assert FULL_ID not in violation.message_zh + violation.message_en


# --------------------------------------------------------------------------------------------------
# Time zone and month boundaries


def test_month_boundaries_follow_asia_shanghai():
    # 2026-01-31 16:30 UTC is 2026-02-01 00:30 in Beijing: a January registration pushed then is late.
    event = clean(event_date=date(2026, 1, 31), extracted_at=datetime(2026, 1, 31, 16, 30, tzinfo=UTC))
    assert evaluate(event).rule_ids == ("LATE_PUSH",)
    assert evaluate(event, config=GateConfig(timezone="UTC")).rule_ids == ()
    on_time = replace(event, extracted_at=datetime(2026, 1, 31, 15, 59, tzinfo=UTC))
    assert evaluate(on_time).rule_ids == ()


def test_future_date_is_judged_on_the_local_calendar_day():
    # A 2026-02-01 approval extracted at 2026-02-01 01:00 Beijing (still Jan 31 in UTC) is not future.
    event = clean(event_date=date(2026, 2, 1), extracted_at=datetime(2026, 1, 31, 17, 0, tzinfo=UTC))
    assert evaluate(event).rule_ids == ()
    assert evaluate(event, config=GateConfig(timezone="UTC")).rule_ids == ("EVENT_DATE_FUTURE",)


# --------------------------------------------------------------------------------------------------
# Configuration


def test_family_capacity_limit_is_configurable():
    assert evaluate(family(capacity=6), config=GateConfig(family_care_capacity=8)).violations == ()
    assert evaluate(family(capacity=9), config=GateConfig(family_care_capacity=8)).rule_ids == (
        "FAMILY_CARE_CAPACITY",
    )


def test_capacity_limit_applies_to_family_points_only():
    assert evaluate(clean(inst={"capacity": 120})).violations == ()


def test_capital_bound_is_configurable():
    config = GateConfig(capital_max_wan=Decimal("1000"))
    assert evaluate(clean(inst={"registered_capital": Decimal("1001")}), config=config).rule_ids == (
        "CAPITAL_OUT_OF_RANGE",
    )


def test_low_confidence_threshold_is_configurable():
    event = clean(inst={"county_resolution": CountyResolution(CountyResolutionMethod.ADDRESS, 0.7)})
    assert evaluate(event, config=GateConfig(min_county_confidence=0.8)).rule_ids == (
        "DIVISION_LOW_CONFIDENCE",
    )


def test_prefix_table_can_be_overridden():
    coop = clean(registrar=Registrar.SHICHANG, inst={"uscc": uscc.make_uscc("9", "3", "441800", "MA0K1234")})
    assert evaluate(coop).rule_ids == ("USCC_REGISTRAR_PREFIX",)
    table = {**REGISTRAR_PREFIXES, "SHICHANG": {"91", "92", "93"}}
    config = GateConfig(prefix_table=table)
    assert evaluate(coop, config=config).violations == ()
    assert config.prefix_table[Registrar.SHICHANG] == frozenset({"91", "92", "93"})


def test_rules_can_be_disabled():
    event = clean(event_date=date(2025, 12, 31))
    assert evaluate(event, config=GateConfig(disabled_rules=frozenset({"LATE_PUSH"}))).violations == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"family_care_capacity": -1}, "family_care_capacity"),
        ({"capital_max_wan": Decimal("0")}, "capital_max_wan"),
        ({"min_county_confidence": 1.5}, "min_county_confidence"),
        ({"prefix_table": {Registrar.SHICHANG: {"91"}}}, "no entry for registrar"),
        ({"prefix_table": {**REGISTRAR_PREFIXES, Registrar.SHICHANG: {"9"}}}, "positions 1-2"),
        ({"prefix_table": {**REGISTRAR_PREFIXES, "JIAOTONG": {"91"}}}, "unknown registrar"),
        ({"disabled_rules": frozenset({"NO_SUCH_RULE"})}, "NO_SUCH_RULE"),
        ({"disabled_rules": frozenset({"VOLUME_ANOMALY"})}, "VOLUME_ANOMALY"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GateConfig(**kwargs)


def test_config_is_hashable_and_compared_by_value():
    assert GateConfig() == GateConfig()
    assert hash(GateConfig()) == hash(GateConfig())
    assert GateConfig(prefix_table=dict(REGISTRAR_PREFIXES)) == GateConfig()


# --------------------------------------------------------------------------------------------------
# Batches and caches


def test_evaluate_many_matches_evaluate_one_by_one():
    events = [c[1] for c in CASES] + [c[2] for c in CASES]
    record_checks.clear_caches()
    assert evaluate_many(events) == [evaluate(e) for e in events]
    assert evaluate_many([]) == []


@pytest.mark.parametrize(
    ("scope", "name"),
    [
        ("托育服务", "阳光学生托管中心"),
        ("全日托、半日托", "阳光学生托管中心"),
        ("全日托、半日托", "阳光看护中心"),
        ("学生托管服务", "阳光托育园"),
        ("不含托育服务", "阳光中心"),
        ("日用百货销售", "家庭托育点"),
    ],
)
def test_scope_first_shortcut_agrees_with_the_classifier(scope, name):
    assert record_checks._childcare(scope, name).is_childcare == childcare.classify(scope, name).is_childcare


def test_cached_results_are_shared_not_recomputed():
    record_checks.clear_caches()
    events = [clean(), clean(), clean(inst={"uscc": MINZHENG_CODE[:17]})]
    evaluate_many(events)
    info = record_checks._uscc_facts.cache_info()
    assert (info.hits, info.misses) == (1, 2)


# -- contract v2: the division code the registrar stated is kept when the gate maps it forward ---------


def _laiwu(**inst: Any) -> RegistrationEvent:
    return clean(
        inst={
            "uscc": uscc.make_uscc("5", "2", "371202", "MA0K1234"),
            "address": "山东省济南市莱芜区凤城街道1号",
            "county_code": "371202",  # 莱城区, abolished → 莱芜区 370116
            "legal_representative": None,
            **inst,
        }
    )


def test_a_stated_abolished_code_mapped_forward_is_kept_as_stated_division_code():
    event = _laiwu()
    verdict = evaluate(event)
    assert verdict.accepted and verdict.county_code == "370116"
    published = verdict.apply(event).institution
    assert (published.county_code, published.stated_division_code) == ("370116", "371202")


def test_what_the_connector_recorded_as_stated_is_never_overwritten():
    published = evaluate(_laiwu(stated_division_code="371202001")).apply(
        _laiwu(stated_division_code="371202001")
    )
    assert published.institution.stated_division_code == "371202001"


def test_a_code_resolved_from_the_address_is_not_taken_for_a_stated_one():
    event = _laiwu(county_resolution=CountyResolution(CountyResolutionMethod.ADDRESS, 0.95))
    published = evaluate(event).apply(event).institution
    assert published.county_code == "370116" and published.stated_division_code is None
