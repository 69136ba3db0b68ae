"""Kafka on the ``--secure`` stack: who is refused, what each principal may not do, and that the
pipeline still works exactly once when every component logs in as itself.

The ACL table (regsync.stack.kafka_acls) is applied by the admin to this test's prefixed topics,
the same table ``stack up --secure`` applies to the unprefixed ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from kafka_auth import kafka_login, login_components, use_stack
from listsource import FaultyListConnector, rows

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.settings import get_settings
from regsync.stack.launcher import Endpoints
from regsync.stages.extract import run_extract
from regsync.stages.gate import gate_group_id, gate_transactional_id, run_gate

AS_OF = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
#: Refusals must come fast: a client that cannot log in gives up after this long.
REFUSED_MS = 5000


@pytest.fixture
def secured(secure_stack: Endpoints, uid: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """This test's topics on the secure stack, the ACL table applied to them, each component its principal."""
    use_stack(monkeypatch, secure_stack)  # the session's stack may be a plain one
    topics = Topics(prefix=f"t{uid}.")
    login_components(monkeypatch, secure_stack, topics)
    ensure_topics(secure_stack.bootstrap_servers, topics)
    yield {"stack": secure_stack, "topics": topics, "bootstrap": secure_stack.bootstrap_servers}
    get_settings.cache_clear()


def _producer(s: dict, user: str, **config: object) -> KafkaProducer:
    return KafkaProducer(
        **kafka_login(s["stack"], user), bootstrap_servers=s["bootstrap"], acks="all", **config
    )


def _consumer(s: dict, user: str, **config: object) -> KafkaConsumer:
    return KafkaConsumer(**kafka_login(s["stack"], user), bootstrap_servers=s["bootstrap"], **config)


def _ends(s: dict, topic: str) -> dict[int, int]:
    """End offsets as the admin sees them: the proof that a refused write left nothing behind."""
    return bus.end_offsets(s["bootstrap"], topic, "admin")


def _put(s: dict, topic: str, value: bytes = b"x") -> None:
    producer = _producer(s, "admin")
    producer.send(topic, key=b"k", value=value).get(30)
    producer.close()


def _denied_read(s: dict, user: str, topic: str) -> None:
    """``user`` neither learns the topic's offsets nor fetches its (non-empty) records."""
    consumer = _consumer(s, user, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.end_offsets([tp])
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = [r for _ in range(3) for batch in consumer.poll(timeout_ms=1000).values() for r in batch]
        assert got == []
    finally:
        consumer.close()


def _poll(consumer: KafkaConsumer, times: int) -> None:
    for _ in range(times):
        consumer.poll(timeout_ms=500)


def _denied_write(s: dict, user: str, topic: str) -> None:
    before = _ends(s, topic)
    # Not idempotent: a principal with no write grant anywhere is refused a producer id before any
    # topic is asked, which would hide whether the topic ACL itself holds.
    producer = _producer(s, user, max_block_ms=REFUSED_MS, enable_idempotence=False)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(topic, key=b"forged", value=b"forged").get(10)
    finally:
        producer.close()
    assert _ends(s, topic) == before


def _broker_refusals(s: dict, reason: str) -> int:
    """How many connections the broker's own log says it refused for ``reason``."""
    from pathlib import Path

    log = Path(s["stack"].kafka_secrets_dir).parent / "kafka" / "server.log"
    return sum(
        1
        for line in log.read_text(errors="replace").splitlines()
        if "Failed authentication" in line and reason in line
    )


def test_unauthenticated_and_wrong_password_are_refused(secured: dict) -> None:
    boot = secured["bootstrap"]
    # No TLS, no SASL: the TLS handshake fails, the client never gets metadata.
    handshakes = _broker_refusals(secured, "SSL handshake failed")
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(bootstrap_servers=boot, bootstrap_timeout_ms=REFUSED_MS)
    assert _broker_refusals(secured, "SSL handshake failed") > handshakes
    # TLS with the right CA but no login: the listener wants SASL first, and gets none.
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(
            bootstrap_servers=boot,
            security_protocol="SSL",
            ssl_cafile=kafka_login(secured["stack"], "admin")["ssl_cafile"],
            bootstrap_timeout_ms=REFUSED_MS,
        )
    # A known user with a wrong password: refused by SCRAM, as the broker logs.
    bad = _broker_refusals(secured, "invalid credentials")
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(
            **kafka_login(secured["stack"], "connector", password="not-the-password"),
            bootstrap_servers=boot,
            bootstrap_timeout_ms=REFUSED_MS,
        )
    assert _broker_refusals(secured, "invalid credentials") > bad
    # The control: the same listener lets the real connector in.
    ok = KafkaAdminClient(**kafka_login(secured["stack"], "connector"), bootstrap_servers=boot)
    ok.close()


def test_connector_writes_raw_only(secured: dict) -> None:
    topics: Topics = secured["topics"]
    _put(secured, topics.valid)
    before = _ends(secured, topics.raw)
    producer = _producer(secured, "connector")
    producer.send(topics.raw, key=b"k", value=b"v").get(30)
    producer.close()
    assert sum(_ends(secured, topics.raw).values()) == sum(before.values()) + 1
    _denied_write(secured, "connector", topics.valid)
    _denied_read(secured, "connector", topics.valid)
    # Nor may it pose as the gate: the gate's transactional ids are the gate's.
    thief = _producer(secured, "connector", transactional_id=gate_transactional_id(topics, 0))
    try:
        with pytest.raises(TransactionalIdAuthorizationFailedError):
            thief.init_transactions()
    finally:
        thief.close(timeout=5)


def test_bureau_reads_valid_and_nothing_else(secured: dict) -> None:
    topics: Topics = secured["topics"]
    _put(secured, topics.valid, b"accepted")
    _put(secured, topics.rejected, b"personal data of a rejected record")
    reader = _consumer(
        secured,
        "bureau",
        group_id=f"bureau-{topics.prefix}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    reader.subscribe([topics.valid])
    got: list[bytes] = []
    for _ in range(20):
        got += [r.value for batch in reader.poll(timeout_ms=500).values() for r in batch]
        if got:
            break
    reader.close()
    assert got == [b"accepted"]
    _denied_read(secured, "bureau", topics.rejected)
    _denied_read(secured, "bureau", topics.raw)
    for topic in topics.all():
        _denied_write(secured, "bureau", topic)
    # A group outside its prefix (here the gate's, whose offsets say how far raw is judged) is refused.
    intruder = _consumer(secured, "bureau", group_id=gate_group_id(topics), enable_auto_commit=False)
    intruder.subscribe([topics.valid])
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            _poll(intruder, 10)
    finally:
        intruder.close()


def test_a_forged_record_cannot_enter_raw(secured: dict) -> None:
    topics: Topics = secured["topics"]
    for user in ("bureau", "gate", "loader", "reports"):
        _denied_write(secured, user, topics.raw)
    assert sum(_ends(secured, topics.raw).values()) == 0


def test_only_the_admin_creates_topics(secured: dict) -> None:
    name = f"{secured['topics'].prefix}sneaky"
    for user in ("connector", "gate", "bureau"):
        client = KafkaAdminClient(
            **kafka_login(secured["stack"], user), bootstrap_servers=secured["bootstrap"]
        )
        try:
            with pytest.raises(TopicAuthorizationFailedError):
                client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        finally:
            client.close()


@pytest.fixture
def secure_database(secure_stack: Endpoints, uid: str) -> Iterator[str]:
    """A fresh database on the secure stack's PostgreSQL for the gate's bookkeeping."""
    import sqlalchemy as sa

    assert secure_stack.database_url is not None
    engine = sa.create_engine(secure_stack.database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "s_{uid}"'))
    yield secure_stack.database_url.rsplit("/", 1)[0] + f"/s_{uid}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "s_{uid}" WITH (FORCE)'))
    engine.dispose()


def test_pipeline_exactly_once_with_a_principal_per_component(secured: dict, secure_database: str) -> None:
    """Extract as ``connector``, gate as ``gate`` (transactions, its group), read back as ``loader``."""
    topics: Topics = secured["topics"]
    registry = secured["stack"].registry_url
    bus.register_schemas(registry, topics)
    common = {"bootstrap": secured["bootstrap"], "registry_url": registry, "topics": topics}
    run_extract(
        FaultyListConnector(rows(30)), as_of=AS_OF, batch_size=10, database_url=secure_database, **common
    )
    counts = run_gate(**common, database_url=secure_database, until_idle=True, max_records=8)
    raw = list(bus.scan(secured["bootstrap"], topics.raw, {}, component="loader"))
    valid = list(bus.scan(secured["bootstrap"], topics.valid, {}, component="loader"))
    rejected = list(bus.scan(secured["bootstrap"], topics.rejected, {}, component="loader"))
    assert counts.consumed == len(raw) == 30
    assert counts.valid == len(valid) and counts.rejected == len(rejected)
    assert len(valid) + len(rejected) == len(raw)
    judged = Counter(
        (int(bus.header(r, "regsync.raw_partition") or -1), int(bus.header(r, "regsync.raw_offset") or -1))
        for r in valid
    ) + Counter(
        (
            int(bus.header(r, "__connect.errors.partition") or -1),
            int(bus.header(r, "__connect.errors.offset") or -1),
        )
        for r in rejected
    )
    assert judged == Counter((r.partition, r.offset) for r in raw)
    # The loader reads; it does not write what it reads.
    _denied_write(secured, "loader", topics.valid)
