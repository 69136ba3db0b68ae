"""Logging test clients in to a ``--secure`` stack: kafka-python arguments and ``REGSYNC_KAFKA__`` variables."""

from __future__ import annotations

from pathlib import Path

from regsync.stack.launcher import Endpoints


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
