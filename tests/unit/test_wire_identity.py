"""Issue 12: the fast encode path writes exactly the bytes the old one did, and the gate judges alike.

The old path is rebuilt here: a codec whose schema strings are not interned, fed ``to_avro()`` dicts
(fastavro picks every union branch itself). The new path is the pipeline's: an interned codec fed
``to_wire()`` dicts (branches named). Over the simulated world's events, the examples and edge values
— nulls, every union branch, decimals at their limits, strings at their bounds — for every contract
version, the bytes must be identical.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple
from unittest import mock

import pytest

from bench.gate_rules import to_event
from quality.record_checks import GateConfig, Verdict
from regsync.kafka.bus import Codecs
from regsync.kafka.topics import Topics
from regsync.stages import gate
from schemas import codec as codec_module
from schemas.codec import AvroCodec, RecordMismatchError
from schemas.contracts import REGISTRATION_EVENT, REJECTED_RECORD, get_contract
from schemas.events import (
    ErrorContext,
    ErrorStage,
    JurisdictionMove,
    LegalRepresentative,
    RegistrationEvent,
    RejectedRecord,
    RuleViolation,
    Severity,
)
from schemas.examples import at_limits, canonical_event
from simulators.world import WorldConfig, build_world

VERSIONS = (1, 2)


def _old_codec(name: str, version: int) -> AvroCodec:
    with mock.patch.object(codec_module, "_interned", lambda node: node):
        return AvroCodec(get_contract(name).version(version).schema_str, 40 + version)


def _new_codec(name: str, version: int) -> AvroCodec:
    return AvroCodec(get_contract(name).version(version).schema_str, 40 + version)


@pytest.fixture(scope="module")
def world_events() -> list[RegistrationEvent]:
    months = ("2025-01", "2025-02", "2025-03", "2025-04")
    world = build_world(WorldConfig(seed=12, months=months, institutions_per_month=150))
    return [to_event(r) for r in world.records]


def _edge_events() -> Iterator[RegistrationEvent]:
    """The canonical event, it at its string bounds, every optional absent, every branch taken."""
    base = canonical_event()
    inst = base.institution
    yield base
    yield at_limits()
    bare = replace(
        inst,
        county_code=None,
        legal_representative=None,
        registered_capital=None,
        service_forms=None,
        capacity=None,
        stated_division_code=None,
        industry_code=None,
    )
    yield replace(base, institution=bare, changed_fields=(), quality_warnings=())
    yield replace(base, institution=replace(inst, legal_representative=LegalRepresentative("王五")))
    yield replace(base, institution=replace(inst, service_forms=()))
    yield replace(base, institution=replace(inst, stated_division_code="350103", industry_code="8020"))
    yield replace(base, jurisdiction=JurisdictionMove())
    yield replace(base, jurisdiction=JurisdictionMove("350102", "350104"))
    for capital in (
        "0",
        "0.000001",
        "-0.000001",
        "999999999999.999999",
        "-999999999999.999999",
        "1E+3",
        "100.250000",
        "-7",
    ):
        yield replace(base, institution=replace(inst, registered_capital=Decimal(capital)))


def _rejected(events: list[RegistrationEvent]) -> Iterator[RejectedRecord]:
    moment = datetime(2025, 4, 1, 8, 0, 0, 1000, tzinfo=UTC)
    violation = RuleViolation("X", Severity.REJECT, "拒收", "rejected", "institution.uscc")
    for index, event in enumerate(events):
        judged = None if index % 2 else moment
        stage = None if index % 3 == 0 else ErrorStage.TRANSFORMATION
        context = ErrorContext("raw", index % 6, index, "gate-1", moment, judged_at=judged, stage=stage)
        yield RejectedRecord(context, (violation,), event=event)
    yield RejectedRecord(ErrorContext("raw", 0, 1, "g", moment), (), raw_value=b"\x00bad", decode_error="x")
    yield RejectedRecord(
        ErrorContext("raw", 0, 2, "g", moment, judged_at=moment, stage=ErrorStage.VALUE_CONVERTER),
        (violation,),
        raw_value=b"",
        decode_error="empty",
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_events_encode_to_the_same_bytes(version: int, world_events: list[RegistrationEvent]) -> None:
    old, new = _old_codec(REGISTRATION_EVENT, version), _new_codec(REGISTRATION_EVENT, version)
    events = [*world_events, *_edge_events()]
    assert len(world_events) > 500
    for event in events:
        wire = new.encode(event.to_wire())
        assert wire == old.encode(event.to_avro()), event.event_id
        if version == max(VERSIONS):  # older versions lack newer fields: only the newest round-trips all
            assert RegistrationEvent.from_avro(new.decode(wire)) == event


@pytest.mark.parametrize("version", VERSIONS)
def test_rejections_encode_to_the_same_bytes(version: int, world_events: list[RegistrationEvent]) -> None:
    old, new = _old_codec(REJECTED_RECORD, version), _new_codec(REJECTED_RECORD, version)
    for record in _rejected([*world_events[:300], *_edge_events()]):
        assert new.encode(record.to_wire()) == old.encode(record.to_avro())


def test_decoded_mappings_are_equal_and_keyed_by_interned_names() -> None:
    old, new = _old_codec(REGISTRATION_EVENT, 2), _new_codec(REGISTRATION_EVENT, 2)
    payload = new.encode(canonical_event().to_wire())
    decoded = new.decode(payload)
    assert decoded == old.decode(payload)
    key = next(k for k in decoded if k == "event_id")
    assert key is sys.intern("event_id")  # from_avro's literal lookups then compare pointers


def test_a_bad_value_behind_a_branch_hint_is_named() -> None:
    codec = _new_codec(REGISTRATION_EVENT, 2)
    inst = canonical_event().institution
    rep = LegalRepresentative("李四", "x", True, "y")
    event = replace(canonical_event(), institution=replace(inst, legal_representative=rep))
    wire = event.to_wire()
    wire["institution"]["legal_representative"][1]["id_valid"] = "yes"
    with pytest.raises(RecordMismatchError) as caught:
        codec.encode(wire)
    assert caught.value.field == "institution.legal_representative.id_valid"


def test_an_unknown_branch_name_fails_loudly() -> None:
    codec = _new_codec(REGISTRATION_EVENT, 2)
    wire = canonical_event().to_wire()
    wire["jurisdiction"] = ("regsync.events.Elsewhere", {"from_county_code": None, "to_county_code": None})
    with pytest.raises(RecordMismatchError):
        codec.encode(wire)


class _Record(NamedTuple):
    """The fields of a consumed record the gate's pure path reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int
    headers: list[tuple[str, bytes]]


def test_the_gate_path_writes_what_the_old_path_wrote(world_events: list[RegistrationEvent]) -> None:
    """judge_records (to_wire, interned codecs) against the same batch judged and encoded the old way."""
    topics = Topics()
    new = Codecs(
        raw=_new_codec(REGISTRATION_EVENT, 2),
        valid=_new_codec(REGISTRATION_EVENT, 2),
        rejected=_new_codec(REJECTED_RECORD, 2),
    )
    old = Codecs(
        raw=_old_codec(REGISTRATION_EVENT, 2),
        valid=_old_codec(REGISTRATION_EVENT, 2),
        rejected=_old_codec(REJECTED_RECORD, 2),
    )
    records = [
        _Record(topics.raw, i % 6, i, e.kafka_key, new.raw.encode(e.to_wire()), e.kafka_timestamp_ms, [])
        for i, e in enumerate(world_events)
    ]
    records.append(_Record(topics.raw, 0, len(records), None, b"\x01garbage", 1_743_465_600_000, []))
    config = GateConfig()
    counts_new, counts_old = gate.GateCounts(), gate.GateCounts()
    ours = gate.judge_records(records, new, config, topics, "gate-x", counts_new)
    with (
        mock.patch.object(RegistrationEvent, "to_wire", RegistrationEvent.to_avro),
        mock.patch.object(RejectedRecord, "to_wire", RejectedRecord.to_avro),
    ):
        theirs = gate.judge_records(records, old, config, topics, "gate-x", counts_old)
    assert counts_new == counts_old
    assert counts_new.valid > 0 and counts_new.rejected > 1  # both outcomes exercised
    assert len(ours) == len(records)
    for mine, reference in zip(ours, theirs, strict=True):
        topic, partition, key, value, _headers, timestamp = mine
        assert (topic, partition, key, timestamp) == (*reference[:3], reference[5])
        if topic == topics.valid:
            assert value == reference[3]
        else:  # judged_at is the wall clock of each call: compare all but it
            a, b = new.rejected.decode(value), old.rejected.decode(reference[3])
            a["error_context"].pop("judged_at"), b["error_context"].pop("judged_at")
            assert json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


@pytest.mark.parametrize("capital", ["1.1234567", "NaN", "Infinity", "-0.0000001"])
def test_a_decimal_that_does_not_fit_fails_alike_on_both_paths(capital: str) -> None:
    old, new = _old_codec(REGISTRATION_EVENT, 2), _new_codec(REGISTRATION_EVENT, 2)
    base = canonical_event()
    event = replace(base, institution=replace(base.institution, registered_capital=Decimal(capital)))
    with pytest.raises(RecordMismatchError) as theirs:
        old.encode(event.to_avro())
    with pytest.raises(RecordMismatchError) as ours:
        new.encode(event.to_wire())
    assert ours.value.field == theirs.value.field == "institution.registered_capital"


# -- issue 12: judging on the decoded mapping, raw bytes passed through ------------------------------


def _variants(events: list[RegistrationEvent]) -> Iterator[RegistrationEvent]:
    """Events that take every branch of the rules and of the gate: blanks, overlong strings, odd counties."""
    from schemas.events import (
        CountyResolution,
        CountyResolutionMethod,
        EventType,
        FieldChange,
    )

    base = canonical_event()
    inst = base.institution
    yield replace(base, quality_warnings=())  # nothing to change: passed through
    yield base  # carries a warning already: the gate replaces it, so it is re-encoded
    for field_name in ("uscc", "name", "address", "business_scope"):
        yield replace(base, institution=replace(inst, **{field_name: " "}))
    yield replace(base, institution=replace(inst, name="托育" * 150, address="地" * 600))
    yield replace(base, lineage=replace(base.lineage, cursor_value="c" * 300, extracted_by="x" * 200))
    yield replace(base, changed_fields=(FieldChange("f" * 70, "o" * 4001, None),))
    yield replace(base, institution=replace(inst, county_code="1234567", stated_division_code="9" * 13))
    for county in (None, "371202", "999999", "370100", "nonsense"):  # missing, abolished, unknown, city, junk
        yield replace(base, institution=replace(inst, county_code=county))
    yield replace(
        base,
        institution=replace(inst, county_resolution=CountyResolution(CountyResolutionMethod.ADDRESS, 0.1)),
    )
    yield replace(base, event_type=EventType.CHANGED, changed_fields=())
    yield replace(base, event_type=EventType.MOVED_IN, jurisdiction=None)
    yield replace(base, event_type=EventType.MOVED_OUT, jurisdiction=JurisdictionMove(" ", None))
    yield replace(
        base, event_type=EventType.DEREGISTERED, institution=replace(inst, business_scope="餐饮服务")
    )
    yield replace(
        base,
        institution=replace(
            inst, legal_representative=LegalRepresentative("王五", "1101**********1234", False)
        ),
    )
    yield replace(base, institution=replace(inst, capacity=40, business_scope="家庭托育服务"))
    yield replace(base, institution=replace(inst, uscc="91ABC"))
    yield replace(base, institution=replace(inst, name="某某餐厅", business_scope="餐饮服务；食品销售"))
    yield replace(
        base, institution=replace(inst, name="某托育中心", business_scope="婴幼儿照护服务（不含托育）")
    )
    for capital in ("-1", "9999999999"):
        yield replace(base, institution=replace(inst, registered_capital=Decimal(capital)))
    yield replace(base, event_date=datetime(2031, 1, 1, tzinfo=UTC).date())
    for event in events[:200]:  # world events with their warnings already attached (a replayed record)
        yield event.with_warnings((RuleViolation("OLD", Severity.WARN, "旧", "old", None),))


def _model_evaluate(event: RegistrationEvent, config: GateConfig) -> object:
    """The record rules on the typed model, exactly as ``_Gate.evaluate`` read before issue 12.

    Kept here as the reference the mapping path is held to (copied, with the helpers it called).
    """
    from quality import record_checks as rc
    from schemas.limits import too_long

    gate = rc._gate_for(config)
    inst = event.institution
    found: list[RuleViolation] = []

    # REQUIRED_FIELD — one finding per blank field, each naming it (inlined: this runs per event).
    code, name, address, scope = inst.uscc, inst.name, inst.address, inst.business_scope
    if not code or code.isspace():
        found.append(rc._REQUIRED_VIOLATION["institution.uscc"])
    if not name or name.isspace():
        found.append(rc._REQUIRED_VIOLATION["institution.name"])
    if not address or address.isspace():
        found.append(rc._REQUIRED_VIOLATION["institution.address"])
    if event.event_date is None:
        found.append(rc._REQUIRED_VIOLATION["event_date"])
    if event.registrar is None:
        found.append(rc._REQUIRED_VIOLATION["registrar"])
    if event.event_type is None:
        found.append(rc._REQUIRED_VIOLATION["event_type"])
    if not scope or scope.isspace():
        found.append(rc._REQUIRED_VIOLATION["institution.business_scope"])

    # FIELD_TOO_LONG — what the gate lets through, the filing store must hold (schemas/limits.py).
    for over in too_long(event):
        found.append(rc._too_long(over))

    # USCC_* and USCC_REGISTRAR_PREFIX
    if code and not code.isspace():
        prefix, uscc_found = rc._uscc_facts(code)
        if uscc_found:
            found.extend(uscc_found)
        registrar = event.registrar
        if prefix is not None and registrar is not None and prefix not in gate.prefixes[registrar]:
            found.append(gate._prefix_violation(code, prefix, registrar))

    # DIVISION_*
    outcome = rc._division_outcome(inst.county_code, address or "", gate.config.resolve_missing_county)
    found.extend(outcome.violations)
    county_code = outcome.county_code
    resolution = outcome.resolution or inst.county_resolution
    if county_code is not None and resolution.confidence < gate.config.min_county_confidence:
        found.append(gate._low_confidence(county_code, resolution))

    # NOT_CHILDCARE
    if event.event_type not in rc.CHILDCARE_EXEMPT_EVENTS:
        verdict = rc._childcare(scope or "", name or "")
        if not verdict.is_childcare:
            found.append(rc._not_childcare(scope or "", name or "", verdict))

    # EVENT_DATE_FUTURE / LATE_PUSH (mutually exclusive)
    event_date = event.event_date
    if event_date is not None:
        pushed = gate.local_date(event.extracted_at)
        if event_date > pushed:
            found.append(gate._future(event_date, pushed))
        elif (event_date.year, event_date.month) < (pushed.year, pushed.month):
            found.append(gate._late(event_date, event.extracted_at, pushed))

    # The rest are cheap attribute tests.
    rep = inst.legal_representative
    if rep is not None and rep.id_valid is False:
        found.append(rc._bad_id(rep.id_number_masked))
    if event.event_type is rc.EventType.CHANGED and not event.changed_fields:
        found.append(rc._NO_CHANGES)
    if event.event_type in (rc.EventType.MOVED_IN, rc.EventType.MOVED_OUT):
        move = event.jurisdiction
        if move is None or (rc._blank(move.from_county_code) and rc._blank(move.to_county_code)):
            found.append(rc._no_move(event.event_type))
    capacity = inst.capacity
    if (
        capacity is not None
        and capacity > gate.config.family_care_capacity
        and rc._is_family(inst.business_scope, inst.name)
    ):
        found.append(gate._family(capacity))
    capital = inst.registered_capital
    if capital is not None and (capital < 0 or capital > gate.config.capital_max_wan):
        found.append(gate._capital(capital, inst.registered_capital_currency))

    if gate.disabled:
        found = [v for v in found if v.rule_id not in gate.disabled]
    accepted = not any(v.severity is Severity.REJECT for v in found)
    return rc.Verdict(accepted, tuple(found), county_code, resolution)


def _reference_judge(
    records: list[_Record], codecs: Codecs, config: GateConfig, topics: Topics
) -> list[tuple[str, int, bytes | None, bytes | None, int]]:
    """The gate before issue 12's mapping path: decode → from_avro → evaluate → apply → to_wire → encode.

    Valid records only (their bytes are compared); a rejected record is ``(topic, …, None, …)``.
    Undecodable records come first, as the gate emits them.
    """
    out: list[tuple[str, int, bytes | None, bytes | None, int]] = []
    judged: list[tuple[_Record, RegistrationEvent]] = []
    for record in records:
        try:
            judged.append((record, RegistrationEvent.from_avro(codecs.raw.decode(record.value))))
        except Exception:
            out.append((topics.rejected, record.partition, record.key, None, record.timestamp))
    for record, event in judged:
        verdict = _model_evaluate(event, config)
        assert isinstance(verdict, Verdict)
        if verdict.accepted:
            value = codecs.valid.encode(verdict.apply(event).to_wire())
            out.append((topics.valid, record.partition, record.key, value, record.timestamp))
        else:
            out.append((topics.rejected, record.partition, record.key, None, record.timestamp))
    return out


@pytest.mark.parametrize("valid_id", [42, 77])  # valid's subject under raw's id, or under its own
def test_the_mapping_path_publishes_what_the_model_round_trip_did(
    valid_id: int, world_events: list[RegistrationEvent]
) -> None:
    """Same topics, same valid bytes, same DLQ values and headers as the model round trip.

    Raw holds world events, the variants above, records written under contract v1 (decoded with
    resolution, so never passed through) and garbage.
    """
    topics = Topics()
    schema = get_contract(REGISTRATION_EVENT).version(2).schema_str
    raw = AvroCodec(schema, 42)
    raw.add_writer(41, get_contract(REGISTRATION_EVENT).version(1).schema_str)
    codecs = Codecs(raw=raw, valid=AvroCodec(schema, valid_id), rejected=_new_codec(REJECTED_RECORD, 2))
    v1 = _new_codec(REGISTRATION_EVENT, 1)
    events = [*world_events, *_edge_events(), *_variants(world_events)]
    records = [
        _Record(topics.raw, i % 6, i, e.kafka_key, raw.encode(e.to_wire()), e.kafka_timestamp_ms, [])
        for i, e in enumerate(events)
    ]
    for e in world_events[:50]:  # an older producer, contract v1
        records.append(
            _Record(
                topics.raw, 1, len(records), e.kafka_key, v1.encode(e.to_avro()), e.kafka_timestamp_ms, []
            )
        )
    records.append(_Record(topics.raw, 0, len(records), None, b"\x01garbage", 1_743_465_600_000, []))
    config = GateConfig()
    counts = gate.GateCounts()
    ours = gate.judge_records(records, codecs, config, topics, "gate-x", counts)
    theirs = _reference_judge(records, codecs, config, topics)
    assert len(ours) == len(theirs) == len(records)
    passed = 0
    by_key_and_time = {(r.key, r.timestamp, r.partition): r for r in records}
    for mine, reference in zip(ours, theirs, strict=True):
        topic, partition, key, value, _headers, timestamp = mine
        assert (topic, partition, key, timestamp) == (reference[0], reference[1], reference[2], reference[4])
        if topic == topics.valid:
            assert value == reference[3], (key, timestamp)
            assert codec_module.read_header(value) == valid_id
            source = by_key_and_time[key, timestamp, partition].value
            passed += value[5:] == source[5:] and codec_module.read_header(source) == raw.schema_id
    assert counts.valid > 0 and counts.rejected > 30
    assert passed > counts.valid // 2  # most valid records are passed through, the rest re-encoded


def test_verdicts_on_the_mapping_equal_verdicts_on_the_model(world_events: list[RegistrationEvent]) -> None:
    """evaluate_avro on the decoded mapping (plain strings) == evaluate on the model built from it.

    The model is ``from_avro`` of the same mapping, as the gate built it before: a decimal reads
    back at the contract's scale (``-7`` → ``-7.000000``), and the messages quote what was read.
    """
    from quality.record_checks import evaluate, evaluate_avro

    codec = _new_codec(REGISTRATION_EVENT, 2)
    config = GateConfig(disabled_rules=frozenset({"LATE_PUSH"}))
    seen: set[str] = set()
    for event in [*world_events, *_edge_events(), *_variants(world_events)]:
        decoded = codec.decode(codec.encode(event.to_wire()))
        for cfg in (GateConfig(), config):
            model = RegistrationEvent.from_avro(decoded)
            assert evaluate_avro(decoded, config=cfg) == _model_evaluate(model, cfg), event.event_id
            assert evaluate(model, config=cfg) == _model_evaluate(model, cfg)
            assert evaluate(event, config=cfg) == _model_evaluate(event, cfg)  # a model built in Python
            seen.update(evaluate_avro(decoded, config=cfg).rule_ids)
    from quality import rules

    assert {r.id for r in rules.RECORD_RULES} - seen <= {
        "USCC_LEGACY_PILOT",
        "USCC_ORG_CHECK_DIGIT",
        "SCHEMA_INVALID",  # decode failures, not judged by the rules
        "SOURCE_UNREADABLE",  # extract's, not the gate's
    }, seen


def test_string_bounds_on_the_mapping_equal_schemas_limits(world_events: list[RegistrationEvent]) -> None:
    from quality.record_checks import _too_long_avro
    from schemas.limits import too_long

    codec = _new_codec(REGISTRATION_EVENT, 2)
    found = 0
    for event in [*world_events, *_edge_events(), *_variants(world_events)]:
        expected = too_long(event)
        found += len(expected)
        assert _too_long_avro(codec.decode(codec.encode(event.to_wire()))) == expected
        assert _too_long_avro(event.to_avro()) == expected
    assert found >= 8  # the overlong variants were seen
