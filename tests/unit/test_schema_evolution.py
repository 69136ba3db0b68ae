"""Stored contracts: every version parses, is documented, is frozen, and reads and is read by every other.

FULL_TRANSITIVE, checked offline with Apache Avro's own checker: every stored version must read data
written with every other stored version, older *and* newer — a bureau consumer pinned to the v1 reader
schema keeps reading what producers write today (the registry enforces the same at runtime).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas.contracts import (
    AVRO_DIR,
    REGISTRATION_EVENT,
    REJECTED_RECORD,
    TOPIC_CONTRACTS,
    Contract,
    ContractError,
    ContractVersion,
    canonical_text,
    get_contract,
    load_contracts,
    subject_for,
)

CONTRACTS = load_contracts()
ALL_VERSIONS = [v for c in CONTRACTS.values() for v in c.versions]
PAIRS = [
    (c.name, reader, writer) for c in CONTRACTS.values() for reader in c.versions for writer in c.versions
]
"""Every (reader, writer) pair in both directions: FULL_TRANSITIVE."""
CJK = re.compile(r"[\u4e00-\u9fff]")
ASCII_LETTER = re.compile(r"[A-Za-z]")


def vid(version: ContractVersion) -> str:
    return f"{version.name.rsplit('.', 1)[-1]}/v{version.version}"


def check(reader: str | dict, writer: str | dict):
    as_text = [x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in (reader, writer)]
    return ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(as_text[0]), avro.schema.parse(as_text[1])
    )


def test_there_are_contracts_to_check():
    assert {REGISTRATION_EVENT, REJECTED_RECORD} <= set(CONTRACTS)
    assert all(c.versions[0].version == 1 for c in CONTRACTS.values())


def test_both_directions_are_checked():
    """Older readers of newer writers are in the list, not only the BACKWARD half."""
    for contract in CONTRACTS.values():
        numbers = {(r.version, w.version) for name, r, w in PAIRS if name == contract.name}
        every = {(a.version, b.version) for a in contract.versions for b in contract.versions}
        assert numbers == every
    assert any(r.version < w.version for _, r, w in PAIRS), "no old-reader/new-writer pair: no v2 yet?"


@pytest.mark.parametrize(
    ("name", "reader", "writer"), PAIRS, ids=[f"{vid(r)}<-v{w.version}" for _, r, w in PAIRS]
)
def test_every_version_reads_every_other_writer(name, reader, writer):
    result = check(reader.schema_str, writer.schema_str)
    assert result.compatibility is SchemaCompatibilityType.compatible, (
        f"{name} v{reader.version} cannot read v{writer.version}: {result.messages} at {result.locations}"
    )


# -- the checker really catches breaking changes ----------------------------------------------------


def _latest_with(mutate) -> dict:
    schema = get_contract(REGISTRATION_EVENT).latest.schema
    mutate(schema)
    return schema


def test_new_required_field_without_default_is_incompatible_and_named():
    def add_required(schema):
        schema["fields"].append(
            {"name": "licence_number", "type": "string", "doc": "许可证号 Licence number."}
        )

    candidate = _latest_with(add_required)
    result = check(candidate, get_contract(REGISTRATION_EVENT).latest.schema_str)
    assert result.compatibility is SchemaCompatibilityType.incompatible
    assert "licence_number" in " ".join(result.messages)


def test_nested_required_field_is_incompatible_and_located():
    def add_nested(schema):
        institution = next(f for f in schema["fields"] if f["name"] == "institution")["type"]
        institution["fields"].append({"name": "floor_area_m2", "type": "double", "doc": "面积 Floor area."})

    result = check(_latest_with(add_nested), get_contract(REGISTRATION_EVENT).latest.schema_str)
    assert result.compatibility is SchemaCompatibilityType.incompatible
    assert "floor_area_m2" in " ".join(result.messages)
    assert any(loc.startswith("/fields/5/type/fields/") for loc in result.locations), result.locations


def test_removed_required_field_breaks_only_the_forward_direction():
    """What BACKWARD alone lets through: dropping a field. A consumer pinned to the old reader breaks."""

    def drop_lineage(schema):
        schema["fields"] = [f for f in schema["fields"] if f["name"] != "lineage"]

    latest = get_contract(REGISTRATION_EVENT).latest.schema_str
    candidate = _latest_with(drop_lineage)
    assert check(candidate, latest).compatibility is SchemaCompatibilityType.compatible  # BACKWARD holds
    old_reads_new = check(latest, candidate)
    assert old_reads_new.compatibility is SchemaCompatibilityType.incompatible  # FORWARD does not
    assert "lineage" in " ".join(old_reads_new.messages)


def test_removed_enum_symbol_is_incompatible():
    def drop_symbol(schema):
        next(f for f in schema["fields"] if f["name"] == "registrar")["type"]["symbols"].remove("JIAOYU")

    result = check(_latest_with(drop_symbol), get_contract(REGISTRATION_EVENT).latest.schema_str)
    assert result.compatibility is SchemaCompatibilityType.incompatible
    assert "JIAOYU" in " ".join(result.messages)


def test_optional_field_with_default_is_compatible():
    def add_optional(schema):
        schema["fields"].append(
            {"name": "filing_status", "type": ["null", "string"], "default": None, "doc": "备案状态 Filing."}
        )

    result = check(_latest_with(add_optional), get_contract(REGISTRATION_EVENT).latest.schema_str)
    assert result.compatibility is SchemaCompatibilityType.compatible


# -- every file parses, is documented and frozen ------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=vid)
def test_avsc_parses_with_fastavro_and_avro(version):
    fastavro.parse_schema(version.schema)
    parsed = avro.schema.parse(version.path.read_text(encoding="utf-8"))
    assert parsed.fullname == version.name
    assert parsed.namespace == "regsync.events"


def _named_and_fields(node, path="") -> list[tuple[str, dict]]:
    """Every field, record and enum definition in a schema, with a readable path."""
    found = []
    if isinstance(node, list):
        for item in node:
            found += _named_and_fields(item, path)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            found.append((f"{path}<{node['name']}>", node))
        for field in node.get("fields", []):
            found.append((f"{path}.{field['name']}", field))
            found += _named_and_fields(field["type"], f"{path}.{field['name']}")
        if node.get("type") == "array":
            found += _named_and_fields(node["items"], f"{path}[]")
    return found


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=vid)
def test_every_field_record_and_enum_has_a_bilingual_doc(version):
    undocumented = [
        path
        for path, node in _named_and_fields(version.schema)
        if not (
            isinstance(node.get("doc"), str) and CJK.search(node["doc"]) and ASCII_LETTER.search(node["doc"])
        )
    ]
    assert undocumented == []


@pytest.mark.parametrize("version", ALL_VERSIONS, ids=vid)
def test_optional_fields_default_to_null_or_empty(version):
    """Unions with null lead with null and default to it, so later versions can add such fields."""
    for path, node in _named_and_fields(version.schema):
        if "name" in node and isinstance(node.get("type"), list) and "null" in node["type"]:
            assert node["type"][0] == "null", path
            assert "default" in node and node["default"] is None, path


def _checksums() -> dict[str, str]:
    lines = (AVRO_DIR / "CHECKSUMS").read_text(encoding="utf-8").splitlines()
    pairs = [line.split(maxsplit=1) for line in lines if line.strip() and not line.startswith("#")]
    return {path.strip(): digest for digest, path in pairs}


def test_published_versions_are_kept_and_unchanged():
    published = _checksums()
    stored = {str(v.path.relative_to(AVRO_DIR)): v.path for v in ALL_VERSIONS}
    assert set(published) <= set(stored), "a published version was deleted"
    for relative, digest in published.items():
        assert hashlib.sha256(stored[relative].read_bytes()).hexdigest() == digest, (
            f"{relative} was edited after publication; add a new version instead"
        )
    assert set(stored) == set(published), "list new versions in schemas/avro/CHECKSUMS when publishing them"


def test_registered_text_is_compact_and_stable():
    for version in ALL_VERSIONS:
        assert version.schema_str == canonical_text(json.loads(version.path.read_text(encoding="utf-8")))
        assert "\n" not in version.schema_str


# -- the catalog ------------------------------------------------------------------------------------


def test_every_topic_maps_to_a_stored_contract():
    assert set(TOPIC_CONTRACTS) == {"registrations.raw", "registrations.valid", "registrations.rejected"}
    for topic, name in TOPIC_CONTRACTS.items():
        assert name in CONTRACTS
        assert subject_for(topic) == f"{topic}-value"


def _embedded_event(rejected_schema: dict) -> dict:
    field = next(f for f in rejected_schema["fields"] if f["name"] == "event")
    return next(branch for branch in field["type"] if branch != "null")


@pytest.mark.parametrize("version", CONTRACTS[REJECTED_RECORD].versions, ids=vid)
def test_rejected_record_embeds_a_stored_registration_event(version):
    embedded = _embedded_event(version.schema)
    assert embedded in [v.schema for v in CONTRACTS[REGISTRATION_EVENT].versions]


def test_latest_rejected_record_embeds_latest_registration_event():
    """When RegistrationEvent gets a new version, RejectedRecord needs one that embeds it."""
    latest = CONTRACTS[REJECTED_RECORD].latest.schema
    assert _embedded_event(latest) == CONTRACTS[REGISTRATION_EVENT].latest.schema


def test_folder_layout_is_enforced(tmp_path: Path):
    folder = tmp_path / "regsync.events.Thing"
    folder.mkdir()
    (folder / "v1.avsc").write_text(
        json.dumps({"type": "record", "name": "Other", "namespace": "x", "fields": []})
    )
    with pytest.raises(ContractError, match="folder"):
        load_contracts(tmp_path)
    (folder / "v1.avsc").write_text(
        json.dumps({"type": "record", "name": "Thing", "namespace": "regsync.events", "fields": []})
    )
    (folder / "v3.avsc").write_text((folder / "v1.avsc").read_text())
    with pytest.raises(ContractError, match="gaps"):
        load_contracts(tmp_path)
    (folder / "v3.avsc").rename(folder / "v2.avsc")
    contract = load_contracts(tmp_path)["regsync.events.Thing"]
    assert isinstance(contract, Contract)
    assert [v.version for v in contract.versions] == [1, 2]


# -- a consumer pinned to v1 reads what producers write now --------------------------------------------


def test_v1_reader_reads_a_v2_record_and_v2_reads_v1():
    """Bytes written with v2 (new fields set) decode with the v1 reader; v1 bytes get v2's defaults."""
    import io

    from schemas.examples import canonical_event

    v1 = fastavro.parse_schema(get_contract(REGISTRATION_EVENT).version(1).schema)
    v2 = fastavro.parse_schema(get_contract(REGISTRATION_EVENT).version(2).schema)
    event = canonical_event()
    inst = {**event.to_avro()["institution"], "stated_division_code": "371202", "industry_code": "8020"}
    record = {**event.to_avro(), "institution": inst}
    written = io.BytesIO()
    fastavro.schemaless_writer(written, v2, record)
    as_v1 = fastavro.schemaless_reader(io.BytesIO(written.getvalue()), v2, v1)
    assert "stated_division_code" not in as_v1["institution"]
    assert as_v1["institution"]["uscc"] == event.institution.uscc
    assert as_v1["event_id"] == event.event_id

    old = io.BytesIO()
    fastavro.schemaless_writer(old, v1, event.to_avro())
    as_v2 = fastavro.schemaless_reader(io.BytesIO(old.getvalue()), v1, v2)
    assert as_v2["institution"]["stated_division_code"] is None
    assert as_v2["institution"]["industry_code"] is None
