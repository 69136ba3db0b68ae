"""docker/compose.yaml's Kafka configuration, run for real outside containers.

There is no Docker engine here, so the next best proof: ``regsync stack secrets`` renders the node
config exactly as compose's ``kafka-secrets`` init does (only the host name, ports and data folder
differ: ``localhost`` and free ports instead of ``kafka:9092``), the node is formatted and started
the way ``docker/kafka/start.sh`` does it (``format --add-scram`` with the rendered arguments, then
``kafka.Kafka`` on the rendered file) from the jars the local stack runs, and ``regsync stack acls``
sets it up as ``kafka-init`` does. Then the principals compose hands out are tried.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from regsync.kafka.topics import Topics, ensure_topics
from regsync.settings import StackSettings, get_settings
from regsync.stack import compose_kafka, kafka_broker, kafka_secrets
from regsync.stack.artifacts import kafka_libs
from regsync.stack.prereq import find_java
from regsync.stack.process import ServiceRecord, free_port, spawn, stop, wait_ready
from schemas.contracts import TOPIC_RAW, TOPIC_VALID

CLUSTER_ID = "JUFRIjErW9yODxU0yMDw8Q"  # compose's default
REFUSED_MS = 5000


def _password(user: str) -> str:
    return f"{user}-compose-0123456789"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One compose node (rendered config, SCRAM users at format time), its ports and CA file."""
    settings = StackSettings()
    java = find_java(settings.java_home)
    libs = kafka_libs(
        settings.cache_dir, settings.kafka_version, settings.log4j_version, settings.kafka_home
    ).path
    root = tmp_path_factory.mktemp("compose-kafka")
    out, ca_out = root / "kafka", root / "ca"
    ca_out.mkdir()
    taken: set[int] = set()
    for _ in range(3):
        taken.add(free_port(taken))
    client, controller, host = sorted(taken)
    env = {compose_kafka.password_variable(p): _password(p) for p in kafka_secrets.PRINCIPALS}
    compose_kafka.render(
        out,
        f"1@localhost:{controller}",
        env,
        host_port=host,
        ca_out=ca_out,
        hosts=("kafka", "kafka-2", "kafka-3"),
        client_port=client,
        host_listener_port=host,
        data_dir=root / "data",
    )
    conf = out / "node-1" / "server.properties"
    jvm = [str(java.executable), "-Xmx384m", "-Xms128m", "-cp", f"{libs}/*"]
    scram = (out / "format.args").read_text().split("\n")[:-1]
    fmt = subprocess.run(
        [
            *jvm,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={CLUSTER_ID}",
            "--config",
            str(conf),
            *scram,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    log = root / "kafka.log"
    proc = spawn([*jvm, "kafka.Kafka", str(conf)], log)
    record = ServiceRecord.of(
        proc,
        name="compose-kafka",
        log=str(log),
        endpoints={},
        ports={},
        extra={},
    )
    admin = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "admin",
        "sasl_plain_password": _password("admin"),
        "ssl_cafile": str(ca_out / "ca.pem"),
    }
    try:
        # The HOST listener, as a tool on the host would reach it: SASL_SSL, the clients' CA copy.
        wait_ready(
            "compose-kafka",
            lambda: kafka_broker.probe(f"localhost:{host}", 1, admin),
            proc=psutil.Process(proc.pid),
            log_path=log,
            timeout=settings.start_timeout_s,
        )
        yield {"client": f"localhost:{client}", "host": f"localhost:{host}", "ca": str(ca_out / "ca.pem")}
    finally:
        stop(record)


def _login(node: dict, user: str) -> dict[str, object]:
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": _password(user),
        "ssl_cafile": node["ca"],
    }


def _regsync_env(node: dict, **logins: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_")}
    env |= {
        "REGSYNC_KAFKA_BOOTSTRAP": node["client"],
        "REGSYNC_REGISTRY_URL": "http://127.0.0.1:9/apis/ccompat/v7",  # never asked: `acls` needs Kafka only
        "REGSYNC_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "REGSYNC_KAFKA__CA_FILE": node["ca"],
        "REGSYNC_STACK__STATE_DIR": str(Path(node["ca"]).parent / "state"),
    }
    for component, user in logins.items():
        key = "REGSYNC_KAFKA" if component == "default" else f"REGSYNC_KAFKA__PRINCIPALS__{component.upper()}"
        env[f"{key}__USERNAME"] = user
        env[f"{key}__PASSWORD"] = _password(user)
    return env


def _acls(node: dict, **logins: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regsync", "stack", "acls", "--json"],
        env=_regsync_env(node, **logins),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kafka_init_creates_the_topics_and_applies_the_acl_table_once(node: dict) -> None:
    first = _acls(node, admin="admin")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["topics_created"] == list(Topics().all())
    again = _acls(node, admin="admin")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"topics_created": [], "acls": json.loads(first.stdout)["acls"]}
    # Not the admin: the table is refused, one line and exit 78 (the deployment's fault, not a bug).
    refused = _acls(node, default="reports")
    assert refused.returncode == 78, refused.stderr
    assert "ACL(s) refused" in refused.stderr and "Traceback" not in refused.stderr


def test_the_jobs_default_login_checks_the_topics_without_creating_them(
    node: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _acls(node, admin="admin").returncode == 0
    for key, value in _regsync_env(node, default="reports").items():
        if key.startswith("REGSYNC_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        assert ensure_topics(node["client"], Topics()) == []
    finally:
        get_settings.cache_clear()


def test_nothing_connects_in_clear_or_with_a_wrong_password(node: dict) -> None:
    for bootstrap in (node["client"], node["host"]):
        # No TLS, no SASL: the handshake fails and the client never gets metadata.
        with pytest.raises(KafkaTimeoutError):
            KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=REFUSED_MS)
        # A known user with a wrong password: refused by SCRAM.
        wrong = _login(node, "gate") | {"sasl_plain_password": "not-the-password-at-all"}
        with pytest.raises(KafkaTimeoutError):
            KafkaAdminClient(**wrong, bootstrap_servers=bootstrap, bootstrap_timeout_ms=REFUSED_MS)
    # The right password is let in (so the refusals above are not a broken listener).
    KafkaAdminClient(**_login(node, "gate"), bootstrap_servers=node["client"]).close()


def test_each_principal_compose_hands_out_does_only_its_own_job(node: dict) -> None:
    assert _acls(node, admin="admin").returncode == 0

    def produce(user: str, topic: str) -> int:
        producer = KafkaProducer(
            **_login(node, user), bootstrap_servers=node["client"], acks="all", retries=0, max_block_ms=15_000
        )
        try:
            return producer.send(topic, key=b"k", value=b"v").get(30).offset
        finally:
            producer.close()

    assert produce("connector", TOPIC_RAW) >= 0
    for user, topic in (
        ("gate", TOPIC_RAW),
        ("loader", TOPIC_RAW),
        ("connector", TOPIC_VALID),
        ("bureau", TOPIC_VALID),
    ):
        with pytest.raises(TopicAuthorizationFailedError):
            produce(user, topic)
    consumer = KafkaConsumer(
        **_login(node, "loader"), bootstrap_servers=node["client"], consumer_timeout_ms=5000
    )
    try:
        parts = [TopicPartition(TOPIC_RAW, p) for p in consumer.partitions_for_topic(TOPIC_RAW) or set()]
        ends = consumer.end_offsets(parts)
        assert sum(ends.values()) >= 1  # the loader sees what the connector wrote
    finally:
        consumer.close()
