"""Logging test clients in to a ``--secure`` stack: kafka-python arguments and ``REGSYNC_KAFKA__`` variables.

The one place tests get a Kafka login from (tests/conftest.py's fixtures use it): a test's own
clients take :func:`kafka_login`, the product's clients and ``regsync`` subprocesses take
:func:`kafka_env` through the environment, exactly as production configures them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from regsync.kafka.topics import Topics
from regsync.stack.launcher import Endpoints

#: The pipeline's components that log in as a principal of their own on a secure stack (the ACL table).
COMPONENTS = ("connector", "gate", "loader", "reports")


def secure_wanted() -> bool:
    """``REGSYNC_TEST_SECURE=1``: the session's stack, and any stack a test starts itself, run ``--secure``."""
    return os.environ.get("REGSYNC_TEST_SECURE", "") not in ("", "0")


def kafka_login(endpoints: Endpoints, user: str, password: str | None = None) -> dict[str, object]:
    """kafka-python arguments logging ``user`` in to a secure stack ({} on a plain one)."""
    if endpoints.kafka_secrets_dir is None:
        return {}
    from regsync.stack import kafka_secrets

    found = kafka_secrets.load(Path(endpoints.kafka_secrets_dir).parent)
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": kafka_secrets.MECHANISM,
        "sasl_plain_username": user,
        "sasl_plain_password": found.password(user) if password is None else password,
        "ssl_cafile": str(found.ca_file),
    }


def kafka_env(endpoints: Endpoints, user: str = "admin", component: str | None = None) -> dict[str, str]:
    """``REGSYNC_KAFKA__…`` variables that make the pipeline's clients log in as ``user``."""
    login = kafka_login(endpoints, user)
    if not login:
        return {}
    key = f"REGSYNC_KAFKA__PRINCIPALS__{component.upper()}" if component else "REGSYNC_KAFKA"
    return {
        "REGSYNC_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "REGSYNC_KAFKA__SASL_MECHANISM": str(login["sasl_mechanism"]),
        "REGSYNC_KAFKA__CA_FILE": str(login["ssl_cafile"]),
        f"{key}__USERNAME": user,
        f"{key}__PASSWORD": str(login["sasl_plain_password"]),
    }


def components_env(endpoints: Endpoints) -> dict[str, str]:
    """Every component logged in as its own principal (the admin stays the fallback); {} when plain."""
    env = kafka_env(endpoints, "admin")
    if env:
        for component in COMPONENTS:
            env.update(kafka_env(endpoints, component, component))
    return env


def use_stack(monkeypatch: pytest.MonkeyPatch, endpoints: Endpoints | None) -> None:
    """Point every client of this process (and its subprocesses) at ``endpoints``' own admin login.

    For a stack a test starts itself: on a secure session the environment holds the session stack's
    CA and passwords, which a stack of the test's own does not know. ``None`` (or a plain stack):
    no login at all.
    """
    from regsync.settings import get_settings

    for key in [k for k in os.environ if k.startswith("REGSYNC_KAFKA__")]:
        monkeypatch.delenv(key)
    for key, value in (kafka_env(endpoints) if endpoints is not None else {}).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def login_components(monkeypatch: pytest.MonkeyPatch, endpoints: Endpoints, topics: Topics) -> None:
    """On a secure stack: the admin applies the ACL table to ``topics``' prefix, and the connector,
    gate, loader and reports log in as themselves from now on (``REGSYNC_KAFKA__PRINCIPALS__…``,
    which subprocesses inherit). The admin stays the fallback login, for a test's own set-up. Plain: nothing.
    """
    from kafka import KafkaAdminClient

    from regsync.settings import get_settings
    from regsync.stack import kafka_acls

    env = components_env(endpoints)
    if not env:
        return
    admin = KafkaAdminClient(**kafka_login(endpoints, "admin"), bootstrap_servers=endpoints.bootstrap_servers)
    try:
        kafka_acls.apply(admin, kafka_acls.grants(topics.prefix))
    finally:
        admin.close()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
