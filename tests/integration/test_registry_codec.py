"""Contracts, registry client and codec against the real schema registry (Apicurio ccompat)."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from datetime import UTC, date, datetime

import httpx
import pytest

from schemas.codec import AvroCodec, UnknownSchemaIdError
from schemas.contracts import (
    REGISTRATION_EVENT,
    TOPIC_CONTRACTS,
    TOPIC_RAW,
    TOPIC_REJECTED,
    TOPIC_VALID,
    get_contract,
    subject_for,
)
from schemas.events import (
    CountyResolution,
    CountyResolutionMethod,
    ErrorContext,
    EventType,
    Institution,
    InstitutionStatus,
    LegalForm,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    RejectedRecord,
    RuleViolation,
    Severity,
)
from schemas.registry import (
    CONTRACT_COMPATIBILITY as CONTRACT_LEVEL,
)
from schemas.registry import (
    CompatibilityLevel,
    IncompatibleSchemaError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SchemaRegistryClient,
    codec_for_topic,
    register_all,
    resolve_ids,
)

pytestmark = pytest.mark.integration


class CountingTransport(httpx.HTTPTransport):
    """The real HTTP transport, counting requests so retries are visible."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


@pytest.fixture
def client(registry_url, uid):
    with SchemaRegistryClient(registry_url, subject_prefix=f"test.{uid}.") as c:
        yield c


def event() -> RegistrationEvent:
    return RegistrationEvent.build(
        event_type=EventType.ESTABLISHED,
        registrar=Registrar.MINZHENG,
        event_date=date(2025, 3, 3),
        extracted_at=datetime(2025, 3, 4, 9, 30, tzinfo=UTC),
        institution=Institution(
            uscc="52441802MJL123456X",
            name="清远市清城区小太阳托育中心",
            legal_form=LegalForm.PRIVATE_NON_ENTERPRISE,
            profit_nature=ProfitNature.NON_PROFIT,
            address="广东省清远市清城区凤城街道新城路8号",
            business_scope="3岁以下婴幼儿托育服务",
            status=InstitutionStatus.ACTIVE,
            county_code="441802",
            county_resolution=CountyResolution(CountyResolutionMethod.ADDRESS, 0.9),
        ),
        lineage=Lineage("minzheng-api", "MZ-1", "1", "connectors.minzheng@0.1.0"),
    )


def test_register_all_sets_full_transitive_and_round_trips_through_registered_ids(client, registry_url):
    registered = register_all(client)

    assert [(r.topic, r.contract.version) for r in registered] == [
        (topic, v.version) for topic, name in TOPIC_CONTRACTS.items() for v in get_contract(name).versions
    ]
    for topic in TOPIC_CONTRACTS:
        assert client.get_compatibility(subject_for(topic)) is CompatibilityLevel.FULL_TRANSITIVE
        assert client.get_versions(subject_for(topic)) == list(
            range(1, len(get_contract(TOPIC_CONTRACTS[topic]).versions) + 1)
        )
        assert registered[0].subject.startswith(client.subject_prefix)

    # The registry-wide default too, as a plain HTTP client sees it.
    assert client.get_global_compatibility() is CompatibilityLevel.FULL_TRANSITIVE
    with httpx.Client(base_url=registry_url, timeout=30) as plain:
        assert plain.get("/config").json()["compatibilityLevel"] == "FULL_TRANSITIVE"
        for topic in TOPIC_CONTRACTS:
            answer = plain.get(f"/config/{client.subject(subject_for(topic))}").json()
            assert answer["compatibilityLevel"] == "FULL_TRANSITIVE"

    # Idempotent: a second run registers nothing new and returns the same ids.
    assert [r.schema_id for r in register_all(client)] == [r.schema_id for r in registered]
    assert [r.schema_id for r in resolve_ids(client)] == [r.schema_id for r in registered]

    valid = [r for r in registered if r.topic == TOPIC_VALID][-1]  # the newest version is written
    assert json.loads(client.get_schema_by_id(valid.schema_id)) == valid.contract.schema

    codec = codec_for_topic(client, TOPIC_VALID)
    assert codec.schema_id == valid.schema_id
    payload = codec.encode(event().to_avro())
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == valid.schema_id
    assert RegistrationEvent.from_avro(codec.decode(payload)) == event()

    # A consumer that knows no schema up front resolves the writer id through the registry.
    stranger = AvroCodec(
        get_contract(REGISTRATION_EVENT).latest.schema_str, schema_id=2**31 - 1, schemas=client
    )
    assert RegistrationEvent.from_avro(stranger.decode(payload)) == event()


def test_rejected_record_round_trip(client):
    register_all(client, [TOPIC_REJECTED])
    codec = codec_for_topic(client, TOPIC_REJECTED)
    record = RejectedRecord(
        ErrorContext(TOPIC_RAW, 0, 42, "gate-1", datetime(2025, 3, 4, 9, 31, tzinfo=UTC)),
        (
            RuleViolation(
                "USCC_CHECK_DIGIT", Severity.REJECT, "校验码错误", "bad check digit", "institution.uscc"
            ),
        ),
        event=event(),
    )
    assert RejectedRecord.from_avro(codec.decode(codec.encode(record.to_avro()))) == record


def test_incompatible_version_is_refused(client):
    register_all(client, [TOPIC_RAW])
    subject = subject_for(TOPIC_RAW)
    breaking = get_contract(REGISTRATION_EVENT).latest.schema
    breaking["fields"].append({"name": "licence_number", "type": "string", "doc": "许可证号 Licence number."})
    text = json.dumps(breaking, ensure_ascii=False)

    assert client.is_compatible(subject, text) is False
    with pytest.raises(IncompatibleSchemaError) as info:
        client.register(subject, text)
    assert info.value.subject == client.subject(subject)
    assert client.subject(subject) in str(info.value)
    assert info.value.status_code == 409
    assert client.get_versions(subject) == [v.version for v in get_contract(REGISTRATION_EVENT).versions]

    compatible = get_contract(REGISTRATION_EVENT).latest.schema
    compatible["fields"].append(
        {
            "name": "filing_status",
            "type": ["null", "string"],
            "default": None,
            "doc": "备案状态 Filing status.",
        }
    )
    assert client.is_compatible(subject, json.dumps(compatible, ensure_ascii=False)) is True


def test_lookups_of_unknown_things(client):
    assert client.get_compatibility("nothing-here-value") is None
    assert client.is_compatible("nothing-here-value", get_contract(REGISTRATION_EVENT).latest.schema_str)
    with pytest.raises(SchemaNotFoundError, match="regsync schemas register"):
        resolve_ids(client, [TOPIC_RAW])
    with pytest.raises(SchemaNotFoundError) as info:
        client.get_schema_by_id(2**31 - 1)
    assert info.value.status_code == 404

    codec = AvroCodec(get_contract(REGISTRATION_EVENT).latest.schema_str, 1, schemas=client)
    with pytest.raises(UnknownSchemaIdError):
        codec.decode(b"\x00\x7f\xff\xff\xff\x00")


def test_5xx_is_retried_and_client_errors_are_not(registry_url, uid):
    transport = CountingTransport()
    with SchemaRegistryClient(
        registry_url, subject_prefix=f"test.{uid}.", max_attempts=3, transport=transport
    ) as client:
        # Apicurio answers an unknown compatibility level with a real 500.
        with pytest.raises(RegistryUnavailableError):
            client._request(
                "PUT", f"/config/{client.subject('x-value')}", None, {"compatibility": "SOMETIMES"}
            )
        assert transport.requests == 3

        transport.requests = 0
        with pytest.raises(SchemaNotFoundError):
            client.get_versions("x-value")
        assert transport.requests == 1


def test_connection_errors_are_retried_then_reported():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = CountingTransport()
    with (
        SchemaRegistryClient(
            f"http://127.0.0.1:{port}/apis/ccompat/v7", max_attempts=2, transport=transport
        ) as c,
        pytest.raises(RegistryUnavailableError, match="ConnectError"),
    ):
        c.get_versions("x-value")
    assert transport.requests == 2


def test_cli_schemas_register_takes_the_prefix_from_settings_or_the_flag(
    registry_url, kafka_bootstrap, uid, tmp_path, monkeypatch
):
    from typer.testing import CliRunner

    from regsync.cli import app
    from regsync.settings import get_settings

    for key, value in {
        "REGSYNC_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "REGSYNC_REGISTRY_URL": registry_url,
        "REGSYNC_TOPIC_PREFIX": f"env{uid}.",
        "REGSYNC_STACK__STATE_DIR": str(tmp_path / "no-local-stack"),
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        from_env = runner.invoke(app, ["schemas", "register"])
        from_flag = runner.invoke(app, ["schemas", "register", "--topic-prefix", f"flag{uid}."])
    finally:
        get_settings.cache_clear()
    assert from_env.exit_code == 0, from_env.output
    assert from_flag.exit_code == 0, from_flag.output
    for prefix in (f"env{uid}.", f"flag{uid}."):
        # Asked by name: Apicurio's ccompat GET /subjects lists at most 1000 subjects, fewer than a
        # long-lived shared registry holds.
        versions = httpx.get(f"{registry_url}/subjects/{prefix}registrations.raw-value/versions", timeout=10)
        assert versions.status_code == 200 and versions.json(), versions.text
        assert f"{prefix}registrations.raw-value" in (from_env.output + from_flag.output)


def test_removing_a_field_is_refused_under_full_transitive_though_backward_takes_it(client):
    """What BACKWARD alone let through: a removed field breaks consumers pinned to an older reader."""
    register_all(client, [TOPIC_RAW])
    dropped = get_contract(REGISTRATION_EVENT).latest.schema
    dropped["fields"] = [f for f in dropped["fields"] if f["name"] != "lineage"]
    text = json.dumps(dropped, ensure_ascii=False)
    assert client.is_compatible(subject_for(TOPIC_RAW), text) is False
    with pytest.raises(IncompatibleSchemaError):
        client.register(subject_for(TOPIC_RAW), text)

    lenient = "lenient-value"
    client.set_compatibility(lenient, CompatibilityLevel.BACKWARD)
    client.register(lenient, get_contract(REGISTRATION_EVENT).latest.schema_str)
    client.register(lenient, text)  # BACKWARD accepts the removal
    assert client.get_versions(lenient) == [1, 2]


def _probe(*fields: dict) -> str:
    return json.dumps(
        {"type": "record", "name": "Probe", "namespace": "regsync.test", "fields": list(fields)}
    )


def test_apicurio_checks_full_transitive_against_every_version_not_only_the_latest(client):
    """v3 is FULL-compatible with v2 but cannot be read by v1's reader: only the transitive level sees it."""
    a = {"name": "a", "type": "string"}
    v1 = _probe(a)
    v2 = _probe(a, {"name": "b", "type": "string", "default": ""})
    v3 = _probe(a, {"name": "b", "type": "string"})  # b loses its default: v3 cannot read v1 data
    for subject, level in (("full-value", CompatibilityLevel.FULL), ("transitive-value", CONTRACT_LEVEL)):
        assert client.set_compatibility(subject, level) is level
        client.register(subject, v1)
        client.register(subject, v2)
    client.register("full-value", v3)
    with pytest.raises(IncompatibleSchemaError):
        client.register("transitive-value", v3)
    assert client.get_versions("transitive-value") == [1, 2]


def test_a_consumer_pinned_to_the_v1_reader_reads_v2_records_from_kafka(
    client, kafka_bootstrap, kafka_security, new_topic
):
    """Producer writes v2 (new fields set) through the registry; a v1-pinned bureau consumer still reads."""
    import io

    import fastavro
    from kafka import KafkaConsumer, KafkaProducer

    register_all(client, [TOPIC_VALID])
    codec = codec_for_topic(client, TOPIC_VALID)
    v2 = get_contract(REGISTRATION_EVENT).version(2)
    assert json.loads(client.get_schema_by_id(codec.schema_id)) == v2.schema
    base = event()
    sent = replace(
        base, institution=replace(base.institution, stated_division_code="371202", industry_code="8020")
    )
    topic = new_topic("v1reader")
    producer = KafkaProducer(**kafka_security, bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=sent.kafka_key, value=codec.encode(sent.to_avro())).get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(
        topic,
        **kafka_security,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        consumer_timeout_ms=15_000,
    )
    values = [record.value for record in consumer]
    consumer.close()
    assert len(values) == 1
    value = values[0]
    schema_id = int.from_bytes(value[1:5], "big")
    writer = fastavro.parse_schema(json.loads(client.get_schema_by_id(schema_id)))
    pinned_v1 = fastavro.parse_schema(get_contract(REGISTRATION_EVENT).version(1).schema)
    read = fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, pinned_v1)
    assert "stated_division_code" not in read["institution"]
    assert RegistrationEvent.from_avro(read) == base  # everything v1 knows, unchanged
    assert RegistrationEvent.from_avro(codec.decode(value)) == sent  # the v2 reader gets the new fields


def test_the_global_default_protects_a_subject_nobody_configured(client):
    """A subject made by hand (or by an auto-registering client) gets FULL_TRANSITIVE from PUT /config."""
    register_all(client, [TOPIC_RAW])
    assert client.get_global_compatibility() is CompatibilityLevel.FULL_TRANSITIVE
    a = {"name": "a", "type": "string"}
    b = {"name": "b", "type": "string"}
    stray = "hand-made-value"
    client.register(stray, _probe(a, b))
    with pytest.raises(IncompatibleSchemaError):
        client.register(stray, _probe(a))  # drops b: an old reader of the new data breaks
    # Apicurio 3.0.9 reports NONE for a subject without its own level, though the global one applies;
    # hence register_all sets every subject explicitly.
    assert client.get_compatibility(stray) is CompatibilityLevel.NONE


def test_a_deployment_registered_before_v2_upgrades_in_place(client):
    """What production holds today: subjects at BACKWARD with v1 only. Registering again moves them on."""
    for topic in TOPIC_CONTRACTS:
        client.set_compatibility(subject_for(topic), CompatibilityLevel.BACKWARD)
        client.register(subject_for(topic), get_contract(TOPIC_CONTRACTS[topic]).version(1).schema_str)
    register_all(client)
    for topic in TOPIC_CONTRACTS:
        assert client.get_compatibility(subject_for(topic)) is CompatibilityLevel.FULL_TRANSITIVE
        assert client.get_versions(subject_for(topic)) == [1, 2]
