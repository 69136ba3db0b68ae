"""A load while the broker is down or restarting is retriable, never fatal (issue 16, small fix a).

Empty partition metadata used to raise ``FatalError`` (exit 78: "a person must act") although a
retry a minute later succeeds. This test kills the broker of a stack of its own (never the
session's), runs ``regsync load`` through the CLI, and expects a retriable exit code; then brings
the broker back and expects the same command to load the month.
"""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from kafka_auth import login_components
from listsource import ListConnector, rows

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate
from schemas.errors import EXIT_TEMPFAIL, EXIT_UNAVAILABLE

IN_JAN = datetime(2026, 1, 20, 4, tzinfo=UTC)
REGSYNC = Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "regsync"


def _load(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    regsync = REGSYNC if REGSYNC.exists() else Path(".venv/bin/regsync")
    return subprocess.run(
        [str(regsync), "load", "--month", "2026-01", "--as-of", "2026-02-01T01:00:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.slow
def test_a_load_while_the_broker_is_down_exits_retriable_and_loads_once_it_is_back(
    own_stack, uid, database_url, monkeypatch
):
    ends = own_stack.endpoints()
    topics = Topics(prefix=f"b{uid}.")
    login_components(monkeypatch, ends, topics)
    ensure_topics(ends.bootstrap_servers, topics)
    bus.register_schemas(ends.registry_url, topics)
    p = {
        "bootstrap": ends.bootstrap_servers,
        "registry_url": ends.registry_url,
        "database_url": database_url,
        "topics": topics,
    }
    run_extract(ListConnector(rows(9)), as_of=IN_JAN, **p)
    run_gate(**p, until_idle=True)
    env = {
        # The Kafka login stays (this stack's, the loader as itself when secure); the rest is explicit.
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_KAFKA__")
        },
        "REGSYNC_KAFKA_BOOTSTRAP": ends.bootstrap_servers,
        "REGSYNC_REGISTRY_URL": ends.registry_url,
        "REGSYNC_DATABASE_URL": database_url,
        "REGSYNC_TOPIC_PREFIX": topics.prefix,
    }
    kafka = psutil.Process(own_stack._load()["kafka"].pid)
    kafka.send_signal(signal.SIGKILL)
    kafka.wait(10)
    down = _load(env)
    assert down.returncode in (EXIT_UNAVAILABLE, EXIT_TEMPFAIL), down.stderr[-3000:]

    own_stack.up()  # the broker comes back on the same ports, with its data
    back = _load(env)
    assert back.returncode == 0, back.stderr[-3000:]
    assert "9" in back.stdout
