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
from pipeline_setup import pipeline_params
from test_gate import _outputs, _raw_positions

from regsync.kafka.topics import Topics
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
def test_two_workers_one_killed_and_restarted_judge_every_record_exactly_once(
    stack, uid, database_url, as_components
):
    topics = Topics(prefix=f"w{uid}.", partitions=6)
    p = pipeline_params(stack, database_url, topics, as_components)
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
def test_gate_workers_option_runs_n_processes_that_finish_together(stack, uid, database_url, as_components):
    topics = Topics(prefix=f"n{uid}.", partitions=6)
    p = pipeline_params(stack, database_url, topics, as_components)
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


def _slot_worker(env, slots):
    return subprocess.Popen(
        [sys.executable, "-m", "regsync", "gate", "--slots", str(slots), "--until-idle"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _slot_free(database_url, group_id, instance):
    from regsync.bookkeeping.locks import LockBusyError, advisory_lock

    try:
        with advisory_lock(database_url, f"regsync.gate.instance:{group_id}:{instance}"):
            return True
    except LockBusyError:
        return False


def test_claim_instance_hands_out_distinct_slots_and_refuses_when_all_are_held(database_url):
    from regsync.stages.gate_workers import AllInstancesTakenError, claim_instance

    with claim_instance(database_url, "g", 2) as first, claim_instance(database_url, "g", 2) as second:
        assert (first, second) == (0, 1)
        with pytest.raises(AllInstancesTakenError), claim_instance(database_url, "g", 2):
            pass
        with claim_instance(database_url, "other-group", 2) as elsewhere:
            assert elsewhere == 0  # slots are per consumer group
    with claim_instance(database_url, "g", 2) as again:
        assert again == 0  # released when the holder's block ended


@pytest.mark.slow
def test_replicas_claiming_slots_one_killed_and_restarted_judge_every_record_exactly_once(
    stack, uid, database_url, as_components
):
    """The compose deployment: identical replicas (``--slots``), one SIGKILLed mid-transaction."""
    from regsync.stages.gate import gate_group_id

    topics = Topics(prefix=f"s{uid}.", partitions=6)
    p = pipeline_params(stack, database_url, topics, as_components)
    run_extract(FaultyListConnector(rows(240)), as_of=AS_OF, batch_size=40, **p)
    raw = _raw_positions(p)
    env = _env(stack, database_url, topics)
    doomed = _slot_worker(env | {"REGSYNC_CRASH_AT": "gate.before_commit:1"}, 2)
    out_doomed, _ = doomed.communicate(timeout=180)
    assert doomed.returncode == -9, out_doomed
    assert "claimed instance 0 of 2" in out_doomed
    # PostgreSQL ends the killed replica's session (and so its slot lock) when it sees the socket
    # close; wait for that, bounded, so the restarts below find slot 0 free as in production.
    group = gate_group_id(topics)
    deadline = time.monotonic() + 30
    while not _slot_free(database_url, group, 0):
        assert time.monotonic() < deadline, "the killed replica's slot was never released"
        time.sleep(0.1)  # polling a condition (the server's session end), bounded by the deadline
    replicas = [_slot_worker(env, 2), _slot_worker(env, 2)]
    outs = [r.communicate(timeout=240)[0] for r in replicas]
    assert [r.returncode for r in replicas] == [0, 0], outs
    claimed = sorted(int(o.split("claimed instance ")[1].split()[0]) for o in outs)
    assert claimed == [0, 1]  # slot 0 taken back (fencing the killed transaction), slot 1 new

    outputs = _outputs(p)
    assert set(outputs) == set(raw)
    assert {k: len(v) for k, v in outputs.items() if len(v) != 1} == {}


@pytest.mark.slow
def test_the_gate_job_runs_n_workers_and_sums_their_counts(stack, uid, database_url, as_components):
    """What the Airflow gate task calls: settings built in code reach the worker processes."""
    from regsync import jobs
    from regsync.settings import Settings

    topics = Topics(prefix=f"j{uid}.", partitions=6)
    p = pipeline_params(stack, database_url, topics, as_components)
    run_extract(FaultyListConnector(rows(120)), as_of=AS_OF, batch_size=40, **p)
    settings = Settings(
        kafka_bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topic_prefix=topics.prefix,
        topic_partitions=6,
    )
    counts = jobs.gate(settings, workers=2)
    raw = _raw_positions(p)
    assert counts.consumed == len(raw)
    assert counts.valid + counts.rejected == counts.consumed
    assert sum(counts.by_rule.values()) >= counts.rejected
    outputs = _outputs(p)
    assert set(outputs) == set(raw)
    assert all(len(v) == 1 for v in outputs.values())
    assert jobs.gate(settings, workers=2).consumed == 0  # judged once: a second run finds nothing


def test_a_bounded_gate_run_refuses_when_replicas_hold_every_slot(stack, uid, database_url):
    """Airflow's gate task beside the compose replicas: it fails (retriable) rather than share an id."""
    from regsync import jobs
    from regsync.settings import Settings
    from regsync.stages.gate import gate_group_id
    from regsync.stages.gate_workers import AllInstancesTakenError, claim_instance

    topics = Topics(prefix=f"b{uid}.", partitions=6)
    settings = Settings(
        kafka_bootstrap=stack.bootstrap_servers,
        registry_url=stack.registry_url,
        database_url=database_url,
        topic_prefix=topics.prefix,
        topic_partitions=6,
    )
    with claim_instance(database_url, gate_group_id(topics), 1) as held:
        assert held == 0
        with pytest.raises(AllInstancesTakenError) as refused:
            jobs.gate(settings, workers=1)
        assert refused.value.exit_code == 75
