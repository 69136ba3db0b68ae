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
from quality.record_checks import GateConfig
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
