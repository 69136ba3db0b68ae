"""docker/compose.yaml runs Kafka secure by default: checked statically, no Docker engine needed.

The compose file is parsed as YAML (anchors and merges resolved by the parser), and the brokers'
configuration is rendered by the very function compose's init service runs, then compared with what
``regsync stack up --secure`` starts its brokers with.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from regsync.stack import compose_kafka, kafka_broker, kafka_secrets
from schemas.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
BROKERS = ("kafka", "kafka-2", "kafka-3")
#: Every service that talks to Kafka, and who it is: its per-component principals and the default
#: one (used by anything without its own, such as the topics check before each job).
KAFKA_CLIENTS: dict[str, tuple[set[str], str | None]] = {
    "airflow-scheduler": ({"connector", "gate", "loader", "reports"}, "reports"),
    "gate": ({"gate"}, "gate"),
    "portal": (set(), "reports"),
    "kafka-init": ({"admin"}, None),
}
#: regsync processes that never call Kafka: they get the protocol (so a stray call fails, exit 78)
#: and no login at all.
NO_LOGIN = {"airflow-init", "airflow-api-server", "airflow-dag-processor", "airflow-triggerer"}
TLS_VOLUMES = {"kafka-secrets", "regsync-ca", "postgres-tls"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _logins(env: dict[str, str]) -> tuple[set[str], str | None]:
    principals = {
        m[1].lower() for k in env if (m := re.fullmatch(r"REGSYNC_KAFKA__PRINCIPALS__(\w+?)__USERNAME", k))
    }
    for p in principals:  # the user name is the principal, its password its own secret
        key = f"REGSYNC_KAFKA__PRINCIPALS__{p.upper()}"
        assert env[f"{key}__USERNAME"] == p
        assert env[f"{key}__PASSWORD"].startswith(f"${{KAFKA_{p.upper()}_PASSWORD:?")
    default = env.get("REGSYNC_KAFKA__USERNAME")
    if default is not None:
        assert env["REGSYNC_KAFKA__PASSWORD"].startswith(f"${{KAFKA_{default.upper()}_PASSWORD:?")
    return principals, default


def test_nothing_in_the_default_file_listens_or_connects_in_clear() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert "PLAINTEXT" not in text
    assert "SECURITY_PROTOCOL: PLAINTEXT" not in text


def test_every_kafka_client_logs_in_sasl_ssl_as_its_own_principal(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, (principals, default) in KAFKA_CLIENTS.items():
        env = _env(services[name])
        assert env["REGSYNC_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env["REGSYNC_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512", name
        assert env["REGSYNC_KAFKA__CA_FILE"] == "/etc/regsync/ca/ca.pem", name
        assert _logins(env) == (principals, default), name
        mounts = [
            v for v in services[name]["volumes"] if isinstance(v, str) and v.split(":")[0] in TLS_VOLUMES
        ]
        assert mounts == ["regsync-ca:/etc/regsync/ca:ro"], name  # never a volume holding a key
    for name in NO_LOGIN:
        env = _env(services[name])
        assert env["REGSYNC_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert _logins(env) == (set(), None), name
    # Only the init services hold the admin's password.
    holders = {n for n, svc in services.items() if "KAFKA_ADMIN_PASSWORD" in str(svc.get("environment"))}
    assert holders == {"kafka-secrets", "kafka-init"}
    # Every regsync service is listed above: a new one must say whether and how it uses Kafka.
    regsync = {n for n, svc in services.items() if str(svc.get("image", "")).startswith("${REGSYNC_IMAGE")}
    assert regsync == set(KAFKA_CLIENTS) | NO_LOGIN | {"kafka-secrets"}


def test_the_brokers_start_from_the_rendered_config_after_the_init(compose: dict[str, Any]) -> None:
    services = compose["services"]
    init = services["kafka-secrets"]
    assert init["command"][:3] == ["regsync", "stack", "secrets"]
    assert init["restart"] == "no"
    assert init["user"] == "1000:0"  # the apache/kafka image's appuser owns the brokers' files
    assert set(_env(init)) == {compose_kafka.password_variable(p) for p in kafka_secrets.PRINCIPALS}
    for node, name in enumerate(BROKERS, start=1):
        broker = services[name]
        assert broker["depends_on"]["kafka-secrets"]["condition"] == "service_completed_successfully"
        assert broker["command"] == ["bash", "/opt/regsync-kafka/start.sh"]
        assert "kafka-secrets:/etc/regsync/kafka:ro" in broker["volumes"]
        env = _env(broker)
        assert env["KAFKA_NODE_ID"] == str(node)
        assert not any("PASSWORD" in k for k in env)  # the brokers read their secrets from the volume
        assert "admin.properties" in " ".join(broker["healthcheck"]["test"])
    kafka_init = services["kafka-init"]
    assert kafka_init["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("kafka-2", "kafka-3"):  # the cluster's topics are created once all three are up
        assert kafka_init["depends_on"][name] == {"condition": "service_healthy", "required": False}
    assert kafka_init["command"] == ["regsync", "stack", "acls"]
    for name in KAFKA_CLIENTS.keys() - {"kafka-init"}:
        depends = services[name]["depends_on"]
        assert depends["kafka-init"]["condition"] == "service_completed_successfully", name
    assert services["kafka"]["ports"] == ["127.0.0.1:${KAFKA_HOST_PORT:-9094}:9094"]


def test_the_start_script_formats_once_with_the_scram_users() -> None:
    script = (ROOT / "docker" / "kafka" / "start.sh").read_text()
    assert "set -euo pipefail" in script
    assert "if [ ! -f /var/lib/kafka/data/meta.properties ]" in script
    assert '"${scram[@]}"' in script and "format.args" in script
    assert script.rstrip().endswith('exec /opt/kafka/bin/kafka-server-start.sh "$conf"')


def _passwords() -> dict[str, str]:
    return {compose_kafka.password_variable(p): f"{p}-0123456789abcdef" for p in kafka_secrets.PRINCIPALS}


def _props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_compose_brokers_run_what_stack_up_secure_runs(tmp_path: Path) -> None:
    out, ca_out = tmp_path / "kafka", tmp_path / "ca"
    ca_out.mkdir()
    voters = "1@kafka:9093,2@kafka-2:9093,3@kafka-3:9093"
    done = compose_kafka.render(out, voters, _passwords(), ca_out=ca_out, hosts=BROKERS)
    assert done.generated and set(BROKERS) <= set(done.dns_names)
    secrets = kafka_secrets.KafkaSecrets(
        out, out / "ca.pem", out / "node.pem", {p: f"{p}-0123456789abcdef" for p in kafka_secrets.PRINCIPALS}
    )
    local = _props_text(kafka_broker.server_properties(tmp_path / "d", 9092, 9093, 1, None, 3, secrets))
    for node, name in enumerate(BROKERS, start=1):
        props = _props(out / f"node-{node}" / "server.properties")
        # The security settings are the local stack's, to the letter.
        for key in (
            "inter.broker.listener.name",
            "controller.listener.names",
            "ssl.keystore.type",
            "ssl.keystore.location",
            "ssl.truststore.location",
            "ssl.enabled.protocols",
            "ssl.endpoint.identification.algorithm",
            "listener.name.controller.ssl.client.auth",
            "sasl.enabled.mechanisms",
            "sasl.mechanism.inter.broker.protocol",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            "authorizer.class.name",
            "allow.everyone.if.no.acl.found",
            "super.users",
            "default.replication.factor",
            "min.insync.replicas",
            "transaction.state.log.min.isr",
            "auto.create.topics.enable",
        ):
            assert props[key] == local[key], key
        assert props["allow.everyone.if.no.acl.found"] == "false"
        assert props["super.users"] == "User:admin;User:CN=regsync-kafka-node"
        assert props["authorizer.class.name"].endswith("StandardAuthorizer")
        assert props["node.id"] == str(node)
        assert props["controller.quorum.voters"] == voters
        assert props["log.dirs"] == "/var/lib/kafka/data"
        assert props["advertised.listeners"].startswith(f"SASL_SSL://{name}:9092")
        assert "PLAINTEXT" not in (out / f"node-{node}" / "server.properties").read_text()
        assert "broker.session.timeout.ms" not in props  # the local stack's fast fencing is dev only
    first = _props(out / "node-1" / "server.properties")
    assert first["listeners"] == "SASL_SSL://:9092,CONTROLLER://:9093,HOST://:9094"
    assert first["advertised.listeners"] == "SASL_SSL://kafka:9092,HOST://localhost:9094"
    assert first["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL,HOST:SASL_SSL"
    assert first["default.replication.factor"] == "3" and first["min.insync.replicas"] == "2"
    second = _props(out / "node-2" / "server.properties")
    assert second["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    args = (out / "format.args").read_text().split()
    assert args == kafka_secrets.scram_arguments(secrets)
    admin = _props(out / "admin.properties")
    assert admin["security.protocol"] == "SASL_SSL" and 'username="admin"' in admin["sasl.jaas.config"]
    for path in (out / "ca-key.pem", out / "node.pem", out / "format.args", out / "admin.properties"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((ca_out / "ca.pem").stat().st_mode) == 0o644
    assert (ca_out / "ca.pem").read_bytes() == (out / "ca.pem").read_bytes()
    assert sorted(p.name for p in ca_out.iterdir()) == ["ca.pem"]  # no key reaches the clients


def _props_text(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_the_certificates_are_made_once_and_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "kafka"
    compose_kafka.render(out, "1@kafka:9093", _passwords(), hosts=BROKERS)
    before = {p.name: p.read_bytes() for p in out.glob("*.pem")}
    again = compose_kafka.render(out, "1@kafka:9093", _passwords(), hosts=BROKERS)
    assert not again.generated
    assert {p.name: p.read_bytes() for p in out.glob("*.pem")} == before
    node = x509.load_pem_x509_certificates((out / "node.pem").read_bytes())[0]
    node.verify_directly_issued_by(x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()))
    # A certificate that lacks a node's name is refused, not silently reissued.
    with pytest.raises(ConfigurationError, match="kafka-9"):
        compose_kafka.render(out, "1@kafka:9093,2@kafka-9:9093", _passwords())
    assert {p.name: p.read_bytes() for p in out.glob("*.pem")} == before


def test_missing_or_unsafe_passwords_are_refused_all_at_once(tmp_path: Path) -> None:
    env = _passwords()
    del env["KAFKA_GATE_PASSWORD"], env["KAFKA_BUREAU_PASSWORD"]
    with pytest.raises(ConfigurationError, match="KAFKA_GATE_PASSWORD, KAFKA_BUREAU_PASSWORD"):
        compose_kafka.render(tmp_path, "1@kafka:9093", env)
    env = _passwords() | {"KAFKA_LOADER_PASSWORD": 'x",password="y"]-0123456789'}
    with pytest.raises(ConfigurationError, match="KAFKA_LOADER_PASSWORD"):
        compose_kafka.render(tmp_path, "1@kafka:9093", env)
    env = _passwords() | {"KAFKA_ADMIN_PASSWORD": "short"}
    with pytest.raises(ConfigurationError, match="KAFKA_ADMIN_PASSWORD"):
        compose_kafka.render(tmp_path, "1@kafka:9093", env)
    assert not (tmp_path / "node.pem").exists()  # refused before anything was generated


@pytest.mark.parametrize("voters", ["", "kafka:9093", "1@kafka", "1@kafka:9093,1@kafka-2:9093", "1@ka fka:1"])
def test_malformed_voters_are_a_configuration_error(tmp_path: Path, voters: str) -> None:
    with pytest.raises(ConfigurationError):
        compose_kafka.render(tmp_path, voters, _passwords())


def test_concurrent_renders_on_an_empty_volume_leave_one_matching_ca_and_node(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path / "kafka"
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda _: compose_kafka.render(out, "1@kafka:9093", _passwords()), range(4)))
    assert sum(d.generated for d in done) == 1  # one run made the CA, the others kept it
    node = x509.load_pem_x509_certificates((out / "node.pem").read_bytes())[0]
    node.verify_directly_issued_by(x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()))


@pytest.mark.parametrize("host", ["", "kafka 2", "-kafka", "kafka/2", "ka\nfka"])
def test_a_bad_certificate_host_name_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigurationError, match="host name"):
        compose_kafka.render(tmp_path / "k", "1@kafka:9093", _passwords(), hosts=(host,))
    assert not (tmp_path / "k").exists()


def test_postgres_serves_tls_from_the_same_init_and_every_client_verifies_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pg = services["postgres"]
    assert pg["depends_on"]["kafka-secrets"]["condition"] == "service_completed_successfully"
    assert pg["entrypoint"] == ["bash", "/opt/regsync-postgres/start.sh"]
    assert "postgres-tls:/etc/regsync/postgres-tls:ro" in pg["volumes"]
    assert "--postgres-out=/etc/regsync/postgres-tls" in services["kafka-secrets"]["command"]
    start = (ROOT / "docker" / "postgres" / "start.sh").read_text()
    assert "-c ssl=on" in start and "install -m 0600 -o postgres" in start
    assert "hostnossl all all all reject" in (ROOT / "docker" / "postgres" / "tls-only.sh").read_text()
    urls = {
        f"{name}: {value}"
        for name, svc in services.items()
        for value in _env(svc).values()
        if "@postgres:5432/" in value or value.startswith("jdbc:postgresql:")
    }
    assert len(urls) >= 5
    for url in urls:
        assert url.endswith("?sslmode=verify-full&sslrootcert=/etc/regsync/ca/ca.pem"), url
    # Whoever holds such a URL mounts the CA it names.
    for name, svc in services.items():
        if "sslmode=verify-full" in str(svc.get("environment")):
            assert "regsync-ca:/etc/regsync/ca:ro" in svc["volumes"], name


def test_the_postgres_certificate_is_signed_by_the_clients_ca_and_kept(tmp_path: Path) -> None:
    out, pg = tmp_path / "kafka", tmp_path / "pg"
    pg.mkdir()
    compose_kafka.render(out, "1@kafka:9093", _passwords(), postgres_out=pg)
    crt = x509.load_pem_x509_certificate((pg / "server.crt").read_bytes())
    crt.verify_directly_issued_by(x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()))
    san = crt.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["postgres", "localhost"]
    assert stat.S_IMODE((pg / "server.key").stat().st_mode) == 0o600
    before = (pg / "server.crt").read_bytes()
    compose_kafka.render(out, "1@kafka:9093", _passwords(), postgres_out=pg)
    assert (pg / "server.crt").read_bytes() == before  # kept while the CA is the same
    for f in out.glob("*.pem"):  # a new CA (certificate rotation) reissues it
        f.unlink()
    compose_kafka.render(out, "1@kafka:9093", _passwords(), postgres_out=pg)
    assert (pg / "server.crt").read_bytes() != before
    crt = x509.load_pem_x509_certificate((pg / "server.crt").read_bytes())
    crt.verify_directly_issued_by(x509.load_pem_x509_certificate((out / "ca.pem").read_bytes()))
