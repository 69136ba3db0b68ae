"""Session-wide real services, per-test isolation by unique names.

The stack (Kafka, Apicurio Registry, PostgreSQL) starts once per session through the same launcher
as ``regsync stack up``; each test gets its own topics, consumer groups, registry subjects and
database, named with a short uuid. A watchdog stops the stack even if pytest itself is killed.
Set ``REGSYNC_TEST_STATE_DIR`` to reuse a stack you started with ``regsync stack up`` (it is then
left running). ``REGSYNC_TEST_SECURE=1`` starts the session's stack with ``--secure`` (a reused
state folder that was started secure is used as such): every client of the session then logs in
as the stack's admin over SASL_SSL, through the same ``REGSYNC_KAFKA__…`` settings production uses.
The Kafka security tests start their own secure stack when the session's is plain.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka_auth import kafka_env, kafka_login, login_components, secure_wanted, use_stack

from regsync.kafka.topics import Topics
from regsync.settings import StackSettings
from regsync.stack.launcher import Endpoints, Stack


def _start(state_dir: Path, reuse: bool, secure: bool) -> tuple[Stack, Endpoints]:
    launcher = Stack(StackSettings(state_dir=state_dir, secure=secure))
    if not reuse:
        from regsync.stack.watchdog import spawn_watchdog

        spawn_watchdog(os.getpid(), state_dir, purge=True)
    return launcher, launcher.up()


_SESSION_STATE_DIR: list[Path] = []  # where the session's stack keeps its state (stack_state_dir)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """The real stack, started once for the whole session (``--secure`` with REGSYNC_TEST_SECURE=1)."""
    from regsync.settings import get_settings

    reuse = os.environ.get("REGSYNC_TEST_STATE_DIR")
    state_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("stack")
    launcher, endpoints = _start(state_dir, bool(reuse), secure_wanted())
    _SESSION_STATE_DIR.append(state_dir)
    # A secure stack: every client of the session (and every `regsync` subprocess) is the admin.
    env = kafka_env(endpoints)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield endpoints
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        if not reuse:
            launcher.down(purge=True)


@pytest.fixture(scope="session")
def stack_state_dir(stack: Endpoints) -> Path:
    """The state folder of the session's stack, for tests that drive `regsync stack …` against it."""
    return _SESSION_STATE_DIR[-1]


@pytest.fixture(scope="session")
def secure_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Endpoints]:
    """A stack started ``--secure``: the session's when it is secure, else one of its own."""
    reuse = os.environ.get("REGSYNC_TEST_SECURE_STATE_DIR")
    if secure_wanted() and not reuse:
        yield request.getfixturevalue("stack")
        return
    state_dir = Path(reuse) if reuse else tmp_path_factory.mktemp("secure-stack")
    launcher, endpoints = _start(state_dir, bool(reuse), True)
    try:
        yield endpoints
    finally:
        if not reuse:
            launcher.down(purge=True)


@pytest.fixture
def kafka_security(stack: Endpoints) -> dict[str, object]:
    """kafka-python arguments for a test's own clients: the admin on a secure stack, {} on a plain one."""
    return kafka_login(stack, "admin")


@pytest.fixture
def as_components(stack: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Topics], None]]:
    """Run the product under each component's own principal, so the ACL table is what the test exercises.

    ``as_components(topics)`` on a secure session: the admin applies the table to ``topics``' prefix
    and the connector, gate, loader and reports log in as themselves (``REGSYNC_KAFKA__PRINCIPALS__…``,
    which subprocesses inherit); the test's own clients stay the admin. On a plain session: nothing.
    """
    from regsync.settings import get_settings

    def login(topics: Topics) -> None:
        login_components(monkeypatch, stack, topics)

    yield login
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def own_stack(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """Kafka and a registry of this test's own, which it may kill (PostgreSQL is the session's).

    ``--secure`` on a secure session; every client of the test then logs in to this stack (its own
    CA and passwords), not to the session's. :func:`kafka_auth.login_components` adds the per-component
    logins and the ACL table for the test's topics.
    """
    from regsync.settings import get_settings
    from regsync.stack.watchdog import spawn_watchdog

    state_dir = tmp_path_factory.mktemp("own-stack")
    launcher = Stack(StackSettings(state_dir=state_dir, with_postgres=False, secure=secure_wanted()))
    spawn_watchdog(os.getpid(), state_dir, purge=True)
    use_stack(monkeypatch, launcher.up())
    yield launcher
    monkeypatch.undo()
    get_settings.cache_clear()
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
def new_topic(stack: Endpoints, kafka_bootstrap: str, uid: str) -> Iterator[Callable[..., str]]:
    """Factory: create a topic unique to this test and return its name."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from regsync.kafka import bus

    admin = KafkaAdminClient(**bus.security("admin"), bootstrap_servers=kafka_bootstrap)
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
