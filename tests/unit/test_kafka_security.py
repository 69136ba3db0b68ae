"""Kafka security as pure logic: client arguments from settings, the ACL table, the stack's secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.settings import get_settings
from regsync.stack import kafka_acls, kafka_broker, kafka_secrets
from regsync.stages.gate import gate_group_id, gate_transactional_id
from schemas.errors import ConfigurationError


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    def set_(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    yield set_
    get_settings.cache_clear()


def test_plaintext_by_default(env) -> None:
    env()
    assert bus.security("gate") == {"security_protocol": "PLAINTEXT"}


def test_component_principal_wins_over_the_default(env) -> None:
    env(
        REGSYNC_KAFKA__SECURITY_PROTOCOL="SASL_SSL",
        REGSYNC_KAFKA__CA_FILE="/etc/regsync/ca.pem",
        REGSYNC_KAFKA__USERNAME="fallback",
        REGSYNC_KAFKA__PASSWORD="pw-default",
        REGSYNC_KAFKA__PRINCIPALS__GATE__USERNAME="gate",
        REGSYNC_KAFKA__PRINCIPALS__GATE__PASSWORD="pw-gate",
    )
    gate = bus.security("gate")
    assert gate["sasl_plain_username"] == "gate" and gate["sasl_plain_password"] == "pw-gate"
    assert gate["sasl_mechanism"] == "SCRAM-SHA-512" and gate["ssl_cafile"] == "/etc/regsync/ca.pem"
    assert gate["ssl_check_hostname"] is True
    assert bus.security("loader")["sasl_plain_username"] == "fallback"
    # The password is a SecretStr in the settings: it never shows in their repr.
    assert "pw-gate" not in repr(get_settings().kafka)


def test_sasl_without_a_principal_is_a_configuration_error(env) -> None:
    env(REGSYNC_KAFKA__SECURITY_PROTOCOL="SASL_SSL")
    with pytest.raises(ConfigurationError, match="PRINCIPALS__GATE"):
        bus.security("gate")


def test_acl_table_names_match_the_gate_ids() -> None:
    topics = Topics(prefix="tabc.")
    table = kafka_acls.grants(topics.prefix)
    gate_prefixed = {(g.resource, g.name) for g in table if g.user == "gate" and g.pattern == "PREFIXED"}
    for resource, name in gate_prefixed:
        target = gate_group_id(topics) if resource == "GROUP" else gate_transactional_id(topics, 3)
        assert target.startswith(name)


def test_acl_table_is_least_privilege() -> None:
    table = kafka_acls.grants()
    writes = {(g.user, g.name) for g in table if g.operation == "WRITE" and g.resource == "TOPIC"}
    assert writes == {
        ("connector", "registrations.raw"),
        ("connector", "registrations.rejected"),
        ("gate", "registrations.valid"),
        ("gate", "registrations.rejected"),
    }
    bureau = {(g.operation, g.resource, g.name) for g in table if g.user == "bureau"}
    assert ("READ", "TOPIC", "registrations.valid") in bureau
    assert not any(name in ("registrations.raw", "registrations.rejected") for _, _, name in bureau)
    assert all(g.user != "admin" for g in table)  # the admin is a super user, not a row
    assert len(kafka_acls.bindings(table)) == len(table)


def test_secrets_are_generated_once_private_and_fit_the_broker(tmp_path: Path) -> None:
    first = kafka_secrets.ensure(tmp_path)
    again = kafka_secrets.ensure(tmp_path)
    assert first.passwords == again.passwords
    assert set(first.passwords) == set(kafka_secrets.PRINCIPALS)
    for name in ("ca-key.pem", "node.pem", "users.json", "client.env"):
        assert stat.S_IMODE((first.folder / name).stat().st_mode) == 0o600
    node = x509.load_pem_x509_certificates(first.node_keystore.read_bytes())[0]
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ca = x509.load_pem_x509_certificate(first.ca_file.read_bytes())
    node.verify_directly_issued_by(ca)
    env_text = (first.folder / "client.env").read_text()
    assert "PRINCIPALS__GATE__PASSWORD=" + first.password("gate") in env_text
    assert "BUREAU" not in env_text
    props = kafka_broker._server_properties(tmp_path / "d", 9092, 9093, secure=first)
    assert "allow.everyone.if.no.acl.found=false" in props
    assert "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL" in props
    assert "PLAINTEXT" not in props
    assert kafka_secrets.scram_arguments(first)[1].startswith("SCRAM-SHA-512=[name=admin,password=")
