"""A 3-node Kafka cluster (``regsync stack up --brokers 3``) survives one SIGKILLed broker.

Topics get replication 3 and min.insync.replicas 2, so with one node down every ``acks=all`` write
still has two replicas: extract and the gate finish without error, and reconciliation finds every
source row on raw exactly once and every raw record judged exactly once.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import UTC, datetime

import psutil
import pytest
from kafka import KafkaAdminClient
from kafka_auth import kafka_login, login_components, secure_wanted, use_stack
from listsource import FaultyListConnector, rows

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.settings import StackSettings, get_settings
from regsync.stack.launcher import Stack
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate

AS_OF = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
ROWS = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, stack):
    """Three nodes of its own (``--secure`` too on a secure session); PostgreSQL is the session's."""
    from regsync.stack.watchdog import spawn_watchdog

    state_dir = tmp_path_factory.mktemp("three-brokers")
    launcher = Stack(
        StackSettings(state_dir=state_dir, with_postgres=False, brokers=3, secure=secure_wanted())
    )
    spawn_watchdog(os.getpid(), state_dir, purge=True)
    launcher.up()
    yield launcher
    launcher.down(purge=True)


def _kill(launcher: Stack, name: str) -> None:
    proc = psutil.Process(launcher._load()[name].pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


class KillingConnector(FaultyListConnector):
    """Kills a broker just before it hands over its ``at``-th batch: the extract is mid-run."""

    def __init__(self, data, kill, at: int) -> None:
        super().__init__(data)
        self.kill, self.at = kill, at

    def batches(self, state, ctx):
        for i, batch in enumerate(super().batches(state, ctx)):
            if i == self.at:
                self.kill()
            yield batch


@pytest.fixture
def ends(cluster, monkeypatch):
    """The cluster's endpoints, every client of the test logged in to it (not to the session's stack)."""
    found = cluster.endpoints()
    use_stack(monkeypatch, found)
    yield found
    monkeypatch.undo()
    get_settings.cache_clear()


def test_topics_get_replication_three_and_min_isr_two(ends, uid):
    assert len(ends.bootstrap_servers.split(",")) == 3
    topics = Topics(prefix=f"t{uid}.")
    ensure_topics(ends.bootstrap_servers, topics)
    admin = KafkaAdminClient(**kafka_login(ends, "admin"), bootstrap_servers=ends.bootstrap_servers)
    try:
        # This client may ask another broker than ensure_topics did: let its metadata catch up first.
        admin.wait_for_topics([topics.raw], timeout_ms=30_000)
        described = admin.describe_topics([topics.raw])
        assert [len(p["replica_nodes"]) for p in described[0]["partitions"]] == [3, 3, 3]
        from kafka.admin import ConfigResource, ConfigResourceType

        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.raw, ["min.insync.replicas"])]
        )
        assert found["topic"][topics.raw]["min.insync.replicas"]["value"] == "2"
    finally:
        admin.close()


def test_a_broker_killed_during_extract_and_during_the_gate_loses_and_doubles_nothing(
    cluster, ends, uid, database_url, monkeypatch
):
    topics = Topics(prefix=f"t{uid}.")
    login_components(monkeypatch, ends, topics)
    ensure_topics(ends.bootstrap_servers, topics)
    bus.register_schemas(ends.registry_url, topics)
    p = {
        "bootstrap": ends.bootstrap_servers,
        "registry_url": ends.registry_url,
        "database_url": database_url,
        "topics": topics,
    }
    data = rows(ROWS)

    # Extract: kafka-2 dies before the 4th of 12 batches; the run must finish on the two others.
    summary = run_extract(
        KillingConnector(data, lambda: _kill(cluster, "kafka-2"), at=3), as_of=AS_OF, batch_size=50, **p
    )
    assert summary is not None
    cluster.up()  # kafka-2 comes back and catches up

    raw = list(bus.scan(p["bootstrap"], topics.raw, {}))
    ids = Counter(bus.header(r, "regsync.event_id") for r in raw)
    assert len(ids) == ROWS, "lost on raw"
    assert [i for i, n in ids.items() if n > 1] == [], "duplicated on raw"

    # Gate: kafka-3 dies after the first committed transaction; the run must finish.
    killed = []

    def kill_once(_counts):
        if not killed:
            killed.append(True)
            _kill(cluster, "kafka-3")

    counts = run_gate(**p, until_idle=True, max_records=50, progress=kill_once)
    assert killed
    cluster.up()
    assert counts.consumed == ROWS

    judged = Counter(
        (int(bus.header(r, "regsync.raw_partition")), int(bus.header(r, "regsync.raw_offset")))
        for r in bus.scan(p["bootstrap"], topics.valid, {})
    ) + Counter(
        (int(bus.header(r, "__connect.errors.partition")), int(bus.header(r, "__connect.errors.offset")))
        for r in bus.scan(p["bootstrap"], topics.rejected, {})
    )
    positions = {(r.partition, r.offset) for r in raw}
    assert set(judged) == positions, "lost at the gate"
    assert [k for k, n in judged.items() if n > 1] == [], "duplicated at the gate"
