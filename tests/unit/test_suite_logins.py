"""The secure suite stays whole: no integration or DAG test builds a Kafka client without a login.

``make test-secure`` (REGSYNC_TEST_SECURE=1) only covers what logs in through ``tests/kafka_auth.py``
(the ``kafka_security`` fixture, ``kafka_login``) or the product's own settings; a bare
``KafkaConsumer(bootstrap_servers=…)`` passes on the plain stack and hangs on the secure one. This
finds such a client before anyone runs the secure suite.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
#: Builds unauthenticated clients on purpose: they must be refused.
REFUSALS = {"integration/test_kafka_secure.py", "integration/test_compose_kafka_run.py"}


def _bare_clients(source: str) -> list[int]:
    """Lines of client constructors given no ``**login`` (nor ``security_protocol=``) argument."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in CLIENTS and not any(k.arg in (None, "security_protocol") for k in node.keywords):
            found.append(node.lineno)
    return found


def test_the_refusal_files_exist() -> None:
    """A renamed refusal file would otherwise drop out of the exemption silently."""
    assert all((TESTS / name).is_file() for name in REFUSALS)


def test_the_check_finds_a_bare_client_and_accepts_a_login() -> None:
    assert _bare_clients("KafkaConsumer('t', bootstrap_servers=b)") == [1]
    assert _bare_clients("kafka.KafkaAdminClient(bootstrap_servers=b)") == [1]
    assert _bare_clients("KafkaProducer(**kafka_security, bootstrap_servers=b)") == []


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for d in ("integration", "dags")
        for p in (TESTS / d).glob("*.py")
        if f"{d}/{p.name}" not in REFUSALS  # they build unauthenticated clients on purpose
    ),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_every_kafka_client_of_a_test_logs_in(path: Path) -> None:
    assert _bare_clients(path.read_text(encoding="utf-8")) == [], (
        f"{path.name}: give these clients the kafka_security fixture or kafka_auth.kafka_login(…)"
    )
