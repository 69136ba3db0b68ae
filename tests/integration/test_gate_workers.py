"""Gate workers in one consumer group: exactly once per raw record, even when one is SIGKILLed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from listsource import FaultyListConnector, rows
from test_gate import _outputs, _raw_positions

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stages.extract import run_extract

AS_OF = datetime(2026, 1, 31, 16, 0, tzinfo=UTC)
HERE = Path(__file__).parent


def _env(stack, database_url, topics, **extra):
    # The Kafka login stays (a secure session stack, REGSYNC_TEST_SECURE=1); everything else is explicit.
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_KAFKA__")
    }
    return clean | {
        "PYTHONPATH": str(HERE),
        "REGSYNC_KAFKA_BOOTSTRAP": stack.bootstrap_servers,
        "REGSYNC_REGISTRY_URL": stack.registry_url,
        "REGSYNC_DATABASE_URL": database_url,
        "REGSYNC_TOPIC_PREFIX": topics.prefix,
        "REGSYNC_TOPIC_PARTITIONS": str(topics.partitions),
        "REGSYNC_STACK__STATE_DIR": "/nonexistent/regsync-state",
        **extra,
    }


def _worker(env, instance):
    return subprocess.Popen(
        [sys.executable, "-m", "regsync", "gate", "--instance", str(instance), "--until-idle"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_two_workers_one_killed_and_restarted_judge_every_record_exactly_once(stack, uid, database_url):
    topics = Topics(prefix=f"w{uid}.", partitions=6)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    p = {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": database_url,
        "topics": topics,
    }
    run_extract(FaultyListConnector(rows(240)), as_of=AS_OF, batch_size=40, **p)
    raw = _raw_positions(p)
    assert len({part for part, _ in raw}) >= 4  # keys spread over the partitions

    env = _env(stack, database_url, topics)
    # Worker 1 joins first, takes the partitions and is SIGKILLed with its first transaction open.
    doomed = _worker(env | {"REGSYNC_CRASH_AT": "gate.before_commit:1"}, 1)
    assert doomed.wait(timeout=180) == -9
    # Worker 0 joins the group the dead static member still belongs to (its session has not expired):
    # the partitions are split, worker 0 judges its share and waits for the rest to be judged.
    survivor = _worker(env, 0)
    restarted = _worker(env, 1)  # static member gate-1 takes its partitions back, fencing the old txn
    out_restarted, _ = restarted.communicate(timeout=240)
    out_survivor, _ = survivor.communicate(timeout=240)
    assert restarted.returncode == 0, out_restarted
    assert survivor.returncode == 0, out_survivor

    outputs = _outputs(p)
    assert set(outputs) == set(raw)
    assert {k: len(v) for k, v in outputs.items() if len(v) != 1} == {}


@pytest.mark.slow
def test_gate_workers_option_runs_n_processes_that_finish_together(stack, uid, database_url):
    topics = Topics(prefix=f"n{uid}.", partitions=6)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    p = {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": database_url,
        "topics": topics,
    }
    run_extract(FaultyListConnector(rows(120)), as_of=AS_OF, batch_size=40, **p)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "regsync", "gate", "--workers", "2"],
        env=_env(stack, database_url, topics),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 gate workers finished" in done.stdout
    outputs = _outputs(p)
    assert set(outputs) == set(_raw_positions(p))
    assert all(len(v) == 1 for v in outputs.values())
    assert time.monotonic() - began < 300
