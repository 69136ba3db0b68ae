"""The typed event model mirrors the Avro contracts and round-trips through them."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum

import fastavro
import pytest

from schemas import events
from schemas.contracts import AVRO_DIR, REGISTRATION_EVENT, REJECTED_RECORD, get_contract
from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    ErrorContext,
    ErrorStage,
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
    RejectedRecord,
    RuleViolation,
    ServiceForm,
    Severity,
    kafka_key,
    make_event_id,
)

EXTRACTED = datetime(2025, 3, 31, 16, 5, 7, 123000, tzinfo=UTC)


def full_event() -> RegistrationEvent:
    """Every optional field populated."""
    return RegistrationEvent.build(
        event_type=EventType.CHANGED,
        registrar=Registrar.MINZHENG,
        event_date=date(2025, 3, 28),
        extracted_at=EXTRACTED,
        institution=Institution(
            uscc="52441802MJL123456X",
            name="清远市清城区小太阳托育中心",
            legal_form=LegalForm.PRIVATE_NON_ENTERPRISE,
            profit_nature=ProfitNature.NON_PROFIT,
            address="广东省清远市清城区凤城街道新城路8号",
            business_scope="3岁以下婴幼儿托育服务",
            status=InstitutionStatus.ACTIVE,
            county_code="441802",
            county_resolution=CountyResolution(CountyResolutionMethod.ADDRESS, 0.92),
            legal_representative=LegalRepresentative("张三", "441802********123X", True, "138****5678"),
            registered_capital=Decimal("10.5"),
            service_forms=(ServiceForm.FULL_DAY, ServiceForm.HOURLY),
            capacity=60,
            stated_division_code="441802",
            industry_code="8020",
        ),
        lineage=Lineage(
            "minzheng-api", "MZ-0001", "2025-03-28T09:00:00", "connectors.minzheng@0.1.0", "c-42"
        ),
        changed_fields=[FieldChange("address", "旧址1号", "广东省清远市清城区凤城街道新城路8号")],
        jurisdiction=None,
    ).with_warnings(
        [RuleViolation("USCC_PILOT_CODE", Severity.WARN, "试点代码", "pilot code", "institution.uscc")]
    )


def minimal_event() -> RegistrationEvent:
    """Only required fields; every optional one at its default."""
    return RegistrationEvent.build(
        event_type=EventType.MOVED_IN,
        registrar=Registrar.SHICHANG,
        event_date=date(2024, 12, 31),
        extracted_at=datetime(2025, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        institution=Institution(
            uscc="92441802MA5ABCDE1X",
            name="某家庭托育点",
            legal_form=LegalForm.INDIVIDUAL_BUSINESS,
            profit_nature=ProfitNature.FOR_PROFIT,
            address="某地",
            business_scope="家庭托育服务",
            status=InstitutionStatus.ACTIVE,
        ),
        lineage=Lineage("shichang-files", "SC-9", "3", "connectors.shichang@0.1.0"),
        jurisdiction=JurisdictionMove(None, "441802"),
    )


def avro_round_trip(record: dict, contract: str) -> dict:
    schema = fastavro.parse_schema(get_contract(contract).latest.schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema, None)


@pytest.mark.parametrize("make", [full_event, minimal_event])
def test_event_round_trips_through_avro_dict_and_binary(make):
    event = make()
    assert RegistrationEvent.from_avro(event.to_avro()) == event
    assert RegistrationEvent.from_avro(avro_round_trip(event.to_avro(), REGISTRATION_EVENT)) == event


def test_decoded_values_have_model_types():
    decoded = RegistrationEvent.from_avro(avro_round_trip(full_event().to_avro(), REGISTRATION_EVENT))
    assert type(decoded.event_type) is EventType
    assert type(decoded.institution.service_forms[0]) is ServiceForm
    assert decoded.institution.registered_capital == Decimal("10.500000")
    assert decoded.extracted_at == EXTRACTED
    assert decoded.extracted_at.tzinfo is not None


@pytest.mark.parametrize("with_event", [True, False])
def test_rejected_record_round_trips(with_event):
    context = ErrorContext(
        "registrations.raw",
        3,
        1234567890123,
        "gate-run-1",
        EXTRACTED,
        judged_at=EXTRACTED + timedelta(days=2),
        stage=ErrorStage.TRANSFORMATION,
    )
    violations = (
        RuleViolation("USCC_FORMAT", Severity.REJECT, "格式错误", "bad format", "institution.uscc"),
    )
    if with_event:
        record = RejectedRecord(context, violations, event=full_event())
    else:
        record = RejectedRecord(
            context, violations, raw_value=b"\x01junk", decode_error="MagicByteError: 0x01"
        )
    assert RejectedRecord.from_avro(record.to_avro()) == record
    assert RejectedRecord.from_avro(avro_round_trip(record.to_avro(), REJECTED_RECORD)) == record
    assert record.kafka_key == (full_event().kafka_key if with_event else None)


def _record_fields(schema: dict, name: str) -> set[str]:
    """Field names of the named record anywhere inside ``schema``."""
    found: list[set[str]] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") == "record" and node.get("name") == name:
                found.append({f["name"] for f in node["fields"]})
            for field in node.get("fields", []):
                walk(field["type"])
            if node.get("type") == "array":
                walk(node["items"])

    walk(schema)
    return found[0]


def test_the_model_writes_exactly_the_fields_of_the_newest_contracts():
    """A field added to a new .avsc but not to the model (or the other way round) fails here."""
    event_schema = get_contract(REGISTRATION_EVENT).latest.schema
    event = full_event().to_avro()
    assert set(event) == _record_fields(event_schema, "RegistrationEvent")
    assert set(event["institution"]) == _record_fields(event_schema, "Institution")
    assert set(event["institution"]["legal_representative"]) == _record_fields(
        event_schema, "LegalRepresentative"
    )
    assert set(event["lineage"]) == _record_fields(event_schema, "Lineage")
    rejected_schema = get_contract(REJECTED_RECORD).latest.schema
    context = ErrorContext("t", 0, 0, "r", EXTRACTED).to_avro()
    assert set(context) == _record_fields(rejected_schema, "ErrorContext")


def test_unknown_stage_text_from_a_newer_writer_reads_as_none():
    data = {**ErrorContext("t", 0, 0, "r", EXTRACTED).to_avro(), "stage": "SOMETHING_NEW"}
    assert ErrorContext.from_avro(data).stage is None


def test_rejected_record_needs_exactly_one_of_event_and_raw_value():
    context = ErrorContext("registrations.raw", 0, 0, "run", EXTRACTED)
    with pytest.raises(ValueError, match="either"):
        RejectedRecord(context)
    with pytest.raises(ValueError, match="either"):
        RejectedRecord(context, event=full_event(), raw_value=b"x")


def test_event_id_is_deterministic_uuid5_and_pinned():
    first = make_event_id(Registrar.MINZHENG, "MZ-0001", "v1")
    assert first == make_event_id("MINZHENG", "MZ-0001", "v1")
    parsed = uuid.UUID(first)
    assert parsed.version == 5
    assert parsed == uuid.uuid5(events.EVENT_ID_NAMESPACE, '["MINZHENG", "MZ-0001", "v1"]')
    # Pinned: a changed namespace or name layout would silently break idempotency downstream.
    assert first == "a87b199d-eacb-5942-bf98-82154c998813"


@pytest.mark.parametrize(
    "other",
    [
        (Registrar.SHENPI, "MZ-0001", "v1"),
        (Registrar.MINZHENG, "MZ-0002", "v1"),
        (Registrar.MINZHENG, "MZ-0001", "v2"),
        (Registrar.MINZHENG, "MZ-0001 ", "v1"),
    ],
)
def test_event_id_differs_on_any_input_change(other):
    assert make_event_id(*other) != make_event_id(Registrar.MINZHENG, "MZ-0001", "v1")


def test_event_id_parts_cannot_collide_across_boundaries():
    assert make_event_id("SHICHANG", "a|b", "c") != make_event_id("SHICHANG", "a", "b|c")
    assert make_event_id("SHICHANG", "a", "bc") != make_event_id("SHICHANG", "ab", "c")


def test_build_derives_event_id_from_lineage_and_truncates_to_millis():
    event = RegistrationEvent.build(
        event_type=EventType.ESTABLISHED,
        registrar=Registrar.BIANZHI,
        event_date=date(2025, 1, 2),
        extracted_at=datetime(2025, 1, 2, 3, 4, 5, 678999, tzinfo=UTC),
        institution=minimal_event().institution,
        lineage=Lineage("bianzhi-db", "BZ-7", "r3", "connectors.bianzhi@0.1.0"),
    )
    assert event.event_id == make_event_id(Registrar.BIANZHI, "BZ-7", "r3")
    assert event.extracted_at.microsecond == 678000
    assert event.kafka_timestamp_ms == int(
        datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp() * 1000
    )


def test_kafka_key_is_uscc_utf8():
    event = full_event()
    assert event.kafka_key == b"52441802MJL123456X" == kafka_key(event.institution.uscc)


def test_naive_extracted_at_is_refused():
    with pytest.raises(ValueError, match="timezone"):
        replace(full_event(), extracted_at=datetime(2025, 1, 1))


def test_events_are_frozen():
    with pytest.raises(FrozenInstanceError):
        full_event().event_id = "x"  # type: ignore[misc]


def test_with_warnings_replaces_warnings_only():
    event = full_event()
    warned = event.with_warnings([])
    assert warned.quality_warnings == ()
    assert replace(warned, quality_warnings=event.quality_warnings) == event


# -- enums mirror the .avsc symbols exactly -----------------------------------------------------------


def avro_enums() -> dict[str, list[str]]:
    """Every enum defined in any stored .avsc (latest wins), read from the files themselves."""
    found: dict[str, list[str]] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "enum":
                found[node["name"]] = node["symbols"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(AVRO_DIR.glob("*/v*.avsc"), key=lambda p: (p.parent.name, int(p.stem[1:]))):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


PY_ENUMS: dict[str, type[StrEnum]] = {
    "EventType": EventType,
    "Registrar": Registrar,
    "LegalForm": LegalForm,
    "ProfitNature": ProfitNature,
    "InstitutionStatus": InstitutionStatus,
    "ServiceForm": ServiceForm,
    "CountyResolutionMethod": CountyResolutionMethod,
    "Severity": Severity,
}


def test_every_avro_enum_has_a_python_mirror():
    assert sorted(avro_enums()) == sorted(PY_ENUMS)


@pytest.mark.parametrize("name", sorted(PY_ENUMS))
def test_enum_symbols_match_avsc_exactly(name):
    assert [member.value for member in PY_ENUMS[name]] == avro_enums()[name]


@pytest.mark.parametrize("name", sorted(PY_ENUMS))
def test_enum_members_have_chinese_labels(name):
    for member in PY_ENUMS[name]:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in member.label_zh), member
