"""Avro codec: exact wire bytes, header layout, typed errors, old writers resolved into the reader."""

from __future__ import annotations

import json
import os
import struct
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest

from schemas import codec as codec_module
from schemas.codec import (
    HEADER_SIZE,
    AvroCodec,
    CodecError,
    DecodeError,
    EncodeError,
    MagicByteError,
    MalformedPayloadError,
    RecordMismatchError,
    TruncatedPayloadError,
    UnknownSchemaIdError,
    WriterSchemaResolutionError,
    frame,
    read_header,
)
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import (
    RegistrationEvent,
)
from schemas.examples import canonical_event
from schemas.limits import limit

GOLDEN = Path(__file__).parent / "golden" / "registration_event_v1_schema_id_7.hex"
GOLDEN_V2 = Path(__file__).parent / "golden" / "registration_event_v2_schema_id_8.hex"
V1 = get_contract(REGISTRATION_EVENT).version(1)
V2 = get_contract(REGISTRATION_EVENT).version(2)


def sample_event() -> RegistrationEvent:
    """The canonical event; its encoding is pinned in the golden file."""
    return canonical_event()


class FakeSchemas:
    """In-memory stand-in for the registry's id lookup (pure logic under test, no I/O)."""

    def __init__(self, by_id: dict[int, str]) -> None:
        self.by_id = by_id
        self.calls: list[int] = []

    def get_schema_by_id(self, schema_id: int) -> str:
        self.calls.append(schema_id)
        return self.by_id[schema_id]


def v1_codec(schema_id: int = 7, schemas: FakeSchemas | None = None) -> AvroCodec:
    return AvroCodec(V1.schema_str, schema_id, schemas)


# -- golden bytes and layout ---------------------------------------------------------------------------


def test_encoding_matches_golden_bytes():
    payload = v1_codec().encode(sample_event().to_avro())
    if os.environ.get("REGSYNC_UPDATE_GOLDEN") == "1" or not GOLDEN.exists():
        if os.environ.get("REGSYNC_UPDATE_GOLDEN") != "1":
            pytest.fail(f"{GOLDEN} is missing; create it with REGSYNC_UPDATE_GOLDEN=1")
        GOLDEN.write_text("\n".join(payload.hex()[i : i + 64] for i in range(0, len(payload) * 2, 64)) + "\n")
    assert payload.hex() == "".join(GOLDEN.read_text().split())


def test_golden_bytes_decode_back_to_the_sample():
    payload = bytes.fromhex("".join(GOLDEN.read_text().split()))
    assert RegistrationEvent.from_avro(v1_codec().decode(payload)) == sample_event()


def sample_event_v2() -> RegistrationEvent:
    """The canonical event with contract v2's fields set: an abolished stated code and the industry code."""
    event = canonical_event()
    inst = replace(event.institution, stated_division_code="350101", industry_code="8020")
    return replace(event, institution=inst)


def _golden(path: Path, payload: bytes) -> str:
    if os.environ.get("REGSYNC_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("REGSYNC_UPDATE_GOLDEN") != "1":
            pytest.fail(f"{path} is missing; create it with REGSYNC_UPDATE_GOLDEN=1")
        path.write_text("\n".join(payload.hex()[i : i + 64] for i in range(0, len(payload) * 2, 64)) + "\n")
    return "".join(path.read_text().split())


def test_v2_encoding_matches_its_golden_bytes():
    payload = AvroCodec(V2.schema_str, 8).encode(sample_event_v2().to_avro())
    assert payload.hex() == _golden(GOLDEN_V2, payload)


def test_v2_golden_is_v1_golden_plus_the_two_new_fields():
    """v2 appends two optional fields to Institution: each is a union index + (string) after capacity."""
    v1 = bytes.fromhex("".join(GOLDEN.read_text().split()))
    v2 = bytes.fromhex("".join(GOLDEN_V2.read_text().split()))
    assert v2[0] == 0 and v2[1:5] == (8).to_bytes(4, "big")
    assert len(v2) - len(v1) == (1 + 1 + len("350101")) + (1 + 1 + len("8020"))


def test_v2_golden_decodes_with_v1_reader_and_v2_reader():
    """A consumer pinned to v1 reads v2 bytes (new fields dropped); the v2 reader gets them back."""
    payload = bytes.fromhex("".join(GOLDEN_V2.read_text().split()))
    v1_reader = AvroCodec(V1.schema_str, 7)
    v1_reader.add_writer(8, V2.schema_str)
    assert RegistrationEvent.from_avro(v1_reader.decode(payload)) == canonical_event()
    v2_reader = AvroCodec(V2.schema_str, 8)
    assert RegistrationEvent.from_avro(v2_reader.decode(payload)) == sample_event_v2()
    v2_reader.add_writer(7, V1.schema_str)
    old = bytes.fromhex("".join(GOLDEN.read_text().split()))
    assert RegistrationEvent.from_avro(v2_reader.decode(old)) == canonical_event()


def test_confluent_header_layout():
    payload = v1_codec(schema_id=0x01020304).encode(sample_event().to_avro())
    assert payload[0] == 0x00
    assert payload[1:5] == b"\x01\x02\x03\x04"
    assert struct.unpack(">bI", payload[:HEADER_SIZE]) == (0, 0x01020304)
    assert read_header(payload) == 0x01020304
    assert frame(0x01020304, payload[HEADER_SIZE:]) == payload


def test_batch_helpers_round_trip():
    codec = v1_codec()
    records = [replace(sample_event(), event_id=f"id-{i}").to_avro() for i in range(3)]
    decoded = codec.decode_many(codec.encode_many(records))
    assert [RegistrationEvent.from_avro(d).event_id for d in decoded] == ["id-0", "id-1", "id-2"]


# -- decode errors -----------------------------------------------------------------------------------


def test_wrong_magic_byte():
    payload = bytearray(v1_codec().encode(sample_event().to_avro()))
    payload[0] = 0x01
    with pytest.raises(MagicByteError, match="0x01"):
        v1_codec().decode(bytes(payload))


@pytest.mark.parametrize("size", [0, 1, 4])
def test_payload_shorter_than_header(size):
    with pytest.raises(TruncatedPayloadError, match="header"):
        v1_codec().decode(b"\x00\x00\x00\x00\x07"[:size])


@pytest.mark.parametrize("cut", [1, 20, 100])
def test_truncated_avro_body(cut):
    payload = v1_codec().encode(sample_event().to_avro())
    with pytest.raises(TruncatedPayloadError) as info:
        v1_codec().decode(payload[:-cut])
    assert info.value.schema_id == 7


def test_unknown_schema_id_without_source():
    payload = v1_codec(schema_id=8).encode(sample_event().to_avro())
    with pytest.raises(UnknownSchemaIdError, match="8") as info:
        v1_codec(schema_id=7).decode(payload)
    assert info.value.schema_id == 8


def test_unknown_schema_id_from_source():
    payload = v1_codec(schema_id=8).encode(sample_event().to_avro())
    with pytest.raises(UnknownSchemaIdError, match="not registered"):
        v1_codec(schema_id=7, schemas=FakeSchemas({})).decode(payload)


def test_trailing_bytes_are_malformed():
    payload = v1_codec().encode(sample_event().to_avro()) + b"\x00"
    with pytest.raises(MalformedPayloadError, match="trailing"):
        v1_codec().decode(payload)


def test_incompatible_writer_is_a_resolution_error():
    writer = {"type": "record", "name": "RegistrationEvent", "namespace": "regsync.events",
              "fields": [{"name": "event_id", "type": "long"}]}  # fmt: skip
    payload = AvroCodec(json.dumps(writer), 9).encode({"event_id": 1})
    codec = v1_codec(schemas=FakeSchemas({9: json.dumps(writer)}))
    with pytest.raises(WriterSchemaResolutionError) as info:
        codec.decode(payload)
    assert info.value.schema_id == 9


def test_error_hierarchy():
    for decode_error in (MagicByteError, TruncatedPayloadError, UnknownSchemaIdError, MalformedPayloadError):
        assert issubclass(decode_error, DecodeError)
    assert issubclass(RecordMismatchError, EncodeError)
    assert issubclass(DecodeError, CodecError)
    assert issubclass(EncodeError, CodecError)


# -- encode errors name the field ----------------------------------------------------------------------


def _mutate(path: list[str | int], value: object) -> dict:
    record = sample_event().to_avro()
    node = record
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        (["institution", "uscc"], 91350100, "institution.uscc", "expected string"),
        (
            ["institution", "registered_capital"],
            Decimal("1.1234567"),
            "institution.registered_capital",
            "scale",
        ),
        (["institution", "capacity"], 2**40, "institution.capacity", "out of the Avro int range"),
        (
            ["institution", "registered_capital"],
            Decimal("12345678901234567890"),
            "institution.registered_capital",
            "precision",
        ),
        (
            ["institution", "legal_representative", "id_valid"],
            "yes",
            "institution.legal_representative.id_valid",
            "boolean",
        ),
        (["changed_fields", 0, "field"], None, "changed_fields[0].field", "expected string"),
        (["institution", "service_forms", 1], "OVERNIGHT", "institution.service_forms[1]", "not a symbol"),
        (["quality_warnings", 0, "severity"], "FATAL", "quality_warnings[0].severity", "not a symbol"),
        (["event_type"], "OPENED", "event_type", "not a symbol"),
        (["lineage"], KeyError, "lineage", "missing"),
        (["institution", "name"], KeyError, "institution.name", "missing"),
        (["event_date"], "28/03/2025", "event_date", "expected int"),
    ],
)
def test_record_mismatch_names_the_field(path, value, field, reason):
    with pytest.raises(RecordMismatchError, match=reason) as info:
        v1_codec().encode(_mutate(path, value))
    assert info.value.field == field
    assert repr(field) in str(info.value)
    assert info.value.__cause__ is not None


def test_missing_optional_fields_take_defaults():
    record = sample_event().to_avro()
    for optional in ("changed_fields", "jurisdiction", "quality_warnings"):
        del record[optional]
    decoded = RegistrationEvent.from_avro(v1_codec().decode(v1_codec().encode(record)))
    assert decoded.changed_fields == () and decoded.jurisdiction is None and decoded.quality_warnings == ()


# -- schema evolution at decode time -------------------------------------------------------------------


def v2_candidate() -> dict:
    """A hypothetical v1 successor: one optional field and one more enum symbol.

    Readable by the codec (BACKWARD), though the registry's FULL_TRANSITIVE would refuse the symbol:
    ``Registrar`` has no default, so a v1 reader could not read it. Here only decode-time resolution is
    under test.
    """
    schema = V1.schema
    schema["fields"].append(
        {
            "name": "filing_status",
            "type": ["null", "string"],
            "default": None,
            "doc": "备案状态 Filing status.",
        }
    )
    registrar = next(f for f in schema["fields"] if f["name"] == "registrar")
    registrar["type"]["symbols"].append("WEIJIAN")
    return schema


def test_old_writer_is_resolved_into_the_newer_reader():
    old_payload = v1_codec(schema_id=3).encode(sample_event().to_avro())
    schemas = FakeSchemas({3: V1.schema_str})
    reader = AvroCodec(json.dumps(v2_candidate(), ensure_ascii=False), 8, schemas)

    decoded = reader.decode(old_payload)
    assert decoded["filing_status"] is None
    assert RegistrationEvent.from_avro(decoded) == sample_event()

    reader.decode(old_payload)
    assert schemas.calls == [3]  # writer schema fetched once, then cached


def test_newer_reader_writes_with_its_own_id_and_reads_itself_without_lookup():
    schemas = FakeSchemas({})
    codec = AvroCodec(json.dumps(v2_candidate(), ensure_ascii=False), 8, schemas)
    record = {**sample_event().to_avro(), "filing_status": "已备案"}
    assert codec.decode(codec.encode(record))["filing_status"] == "已备案"
    assert schemas.calls == []


def test_same_schema_under_another_id_skips_resolution():
    codec = v1_codec(schema_id=7)
    codec.add_writer(70, V1.schema_str)
    payload = frame(70, v1_codec().encode(sample_event().to_avro())[HEADER_SIZE:])
    assert RegistrationEvent.from_avro(codec.decode(payload)) == sample_event()


# -- fastavro's compiled core, called directly ------------------------------------------------------


def test_core_and_public_api_write_and_read_the_same():
    """The codec calls fastavro's compiled write_data/_read_data; the public calls it falls back to
    (a build without the Cython modules) give the same bytes, values and errors."""
    golden = bytes.fromhex("".join(GOLDEN.read_text().split()))
    golden_v2 = bytes.fromhex("".join(GOLDEN_V2.read_text().split()))
    with mock.patch.object(codec_module, "_CORE", None):
        public = v1_codec()
        public.add_writer(8, V2.schema_str)
    direct = v1_codec()
    direct.add_writer(8, V2.schema_str)
    assert codec_module._CORE is not None  # the locked fastavro ships its compiled modules
    for codec in (direct, public):
        assert codec.encode(sample_event().to_wire()) == golden
        assert codec.encode(sample_event().to_avro()) == golden
        assert RegistrationEvent.from_avro(codec.decode(golden)) == sample_event()
        assert RegistrationEvent.from_avro(codec.decode(golden_v2)) == sample_event()  # resolved
        with pytest.raises(TruncatedPayloadError):
            codec.decode(golden[:-3])
        with pytest.raises(MalformedPayloadError, match="trailing"):
            codec.decode(golden + b"\x02")
        with pytest.raises(RecordMismatchError) as info:
            codec.encode({**sample_event().to_avro(), "event_date": "not a date"})
        assert info.value.field == "event_date"


def test_one_codec_carries_nothing_from_one_call_to_the_next():
    """Named types and options are built once per codec: a failed call leaves nothing behind, so an
    interleaving of good and bad payloads gives what a fresh codec gives for each."""
    codec = v1_codec()
    codec.add_writer(8, V2.schema_str)
    good = codec.encode(sample_event().to_wire())
    v2 = bytes.fromhex("".join(GOLDEN_V2.read_text().split()))
    bad = [good[:-1], good + b"\x00", b"\x01" + good[1:], good[:HEADER_SIZE] + b"\x81"]
    expected = codec.decode(good)
    for round_ in range(3):
        for payload in bad:
            with pytest.raises(DecodeError):
                codec.decode(payload)
            with pytest.raises(RecordMismatchError):
                codec.encode({**sample_event().to_avro(), "event_id": 5})
            assert codec.decode(good) == expected == v1_codec().decode(good), round_
            assert codec.decode(v2) == expected
            assert codec.encode(sample_event().to_wire()) == good


def test_a_length_beyond_the_payload_is_truncated_not_allocated():
    """A corrupt string length of 2**40 bytes reads what is there and stops: TruncatedPayloadError."""
    payload = v1_codec().encode(sample_event().to_avro())
    huge = bytearray(payload[:HEADER_SIZE])
    value = (2**40) << 1  # zig-zag of a positive length
    while value & ~0x7F:
        huge.append((value & 0x7F) | 0x80)
        value >>= 7
    huge.append(value)
    with pytest.raises(TruncatedPayloadError):
        v1_codec().decode(bytes(huge) + b"x" * 10)


def test_an_oversized_value_round_trips():
    """The codec has no size limit of its own (schemas.limits is the gate's): a value 1,000 times the
    business-scope bound is carried exactly, for the gate to reject by rule rather than by crash."""
    scope = "托育服务；" * (limit("institution.business_scope") * 200)
    event = replace(sample_event(), institution=replace(sample_event().institution, business_scope=scope))
    codec = v1_codec()
    assert RegistrationEvent.from_avro(codec.decode(codec.encode(event.to_wire()))) == event


@pytest.mark.parametrize("core", ["compiled", "public"])
def test_every_corrupted_byte_gives_a_decode_error_or_a_record(core):
    """Overwrite each body byte of the golden payload with 0x00, 0x7f, 0x80 and 0xff: every decode
    either returns a record or raises a DecodeError subclass (the gate's DLQ path) — never another
    exception, a hang or a huge allocation; the same on fastavro's public calls."""
    golden = bytes.fromhex("".join(GOLDEN.read_text().split()))
    with mock.patch.object(codec_module, "_CORE", None if core == "public" else codec_module._CORE):
        codec = v1_codec()
    outcomes: dict[str, int] = {}
    for position in range(HEADER_SIZE, len(golden)):
        for value in (0x00, 0x7F, 0x80, 0xFF):
            corrupted = bytearray(golden)
            corrupted[position] = value
            try:
                decoded = codec.decode(bytes(corrupted))
            except DecodeError as exc:
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            else:
                assert isinstance(decoded, dict)
                outcomes["decoded"] = outcomes.get("decoded", 0) + 1
    # the corruption is seen: most overwrites are errors, of more than one kind
    assert outcomes.get("decoded", 0) < sum(outcomes.values()) / 2
    assert {"TruncatedPayloadError", "MalformedPayloadError"} <= set(outcomes)
