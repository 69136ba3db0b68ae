"""Session-wide real services, per-test isolation by unique names.

The stack (Kafka, Apicurio Registry, PostgreSQL) starts once per session through the same launcher
as ``regsync stack up``; each test gets its own topics, consumer groups, registry subjects and
database, named with a short uuid. A watchdog stops the stack even if pytest itself is killed.
Set ``REGSYNC_TEST_STATE_DIR`` to reuse a stack you started with ``regsync stack up`` (it is then
left running).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from regsync.settings import StackSettings
from regsync.stack.launcher import Endpoints, Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """The real stack, started once for the whole session."""
    reuse = os.environ.get("REGSYNC_TEST_STATE_DIR")
    state_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("stack")
    launcher = Stack(StackSettings(state_dir=state_dir))
    if not reuse:
        from regsync.stack.watchdog import spawn_watchdog

        spawn_watchdog(os.getpid(), state_dir, purge=True)
    endpoints = launcher.up()
    try:
        yield endpoints
    finally:
        if not reuse:
            launcher.down(purge=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Endpoints) -> str:
    """``host:port`` of the session's broker."""
    return stack.bootstrap_servers


@pytest.fixture(scope="session")
def registry_url(stack: Endpoints) -> str:
    """Base URL of the registry's Confluent-compatible API (``…/apis/ccompat/v7``)."""
    return stack.registry_url


@pytest.fixture
def uid() -> str:
    """A short unique id to name this test's topics, groups, subjects and database."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def new_topic(kafka_bootstrap: str, uid: str) -> Iterator[Callable[..., str]]:
    """Factory: create a topic unique to this test and return its name."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    made: list[str] = []

    def make(name: str = "t", partitions: int = 1) -> str:
        topic = f"test.{uid}.{name}"
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
        made.append(topic)
        return topic

    yield make
    if made:
        admin.delete_topics(made)
    admin.close()


@pytest.fixture
def database_url(stack: Endpoints, uid: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    import sqlalchemy as sa

    assert stack.database_url is not None
    admin = sa.create_engine(stack.database_url, isolation_level="AUTOCOMMIT")
    name = f"t_{uid}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
