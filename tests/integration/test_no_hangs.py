"""Issue 13 item 7: every blocking call is bounded.

A killed PostgreSQL in the middle of a load, or a killed broker under the gate, must end in a prompt
non-zero exit (or in progress), never in a process that waits forever: an Airflow task would not end.
Each test kills a real service of its own (never the session's), waits a bounded time for the
pipeline process, then restarts the service and checks that a rerun completes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from kafka_auth import login_components
from listsource import ListConnector, rows

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stack import postgres_cluster
from regsync.stack.prereq import find_postgres
from regsync.stack.process import free_port
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate

HERE = Path(__file__).parent
LAST_OF_JAN = datetime(2026, 1, 31, 15, 50, tzinfo=UTC)
BOUND_S = 60


class OwnPostgres:
    """A PostgreSQL cluster this test may kill and restart (the session's is shared)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.bins = find_postgres()
        self.port = free_port()
        self.record = postgres_cluster.start(state_dir, self.bins, self.port, 60)

    @property
    def url(self) -> str:
        return self.record.endpoints["url"]

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend: the connections die with them."""
        root = psutil.Process(self.record.pid)
        procs = [root, *root.children(recursive=True)]
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)
        # A SIGKILLed postmaster leaves its pid file behind; pg_ctl start refuses until it is gone.
        Path(self.record.extra["data"], "postmaster.pid").unlink(missing_ok=True)

    def restart(self) -> None:
        self.record = postgres_cluster.start(self.state_dir, self.bins, self.port, 60)

    def stop(self) -> None:
        if not postgres_cluster.stop(self.record):
            with contextlib.suppress(psutil.Error):
                self.kill()


@pytest.fixture
def own_postgres(tmp_path_factory):
    pg = OwnPostgres(tmp_path_factory.mktemp("pg"))
    yield pg
    pg.stop()


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended before {path.name}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.05)


LOAD_SCRIPT = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, all_threads=True)
from datetime import datetime, timezone
from pathlib import Path
import sink.loader

marker, go = Path({marker!r}), Path({go!r})
real = sink.loader.load_month

def paused(*args, **kwargs):
    inner = kwargs.get("on_chunk")

    def on_chunk(i, records):
        if inner is not None:
            inner(i, records)
        if i == 0:
            marker.touch()
            deadline = time.monotonic() + 60
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
    kwargs["on_chunk"] = on_chunk
    kwargs["chunk_size"] = 5  # the scan is suspended mid-topic when PostgreSQL dies
    return real(*args, **kwargs)

sink.loader.load_month = paused
sys.argv = ["regsync", "load", "--month", "2026-01", "--as-of", "2026-03-01T01:00:00+00:00"]
from regsync.cli import main
main()
"""


@pytest.mark.slow
def test_postgres_killed_mid_load_exits_nonzero_promptly_and_rerun_completes(
    stack, uid, own_postgres, tmp_path, as_components
):
    """Was: a traceback, then ≥150 s in KafkaConsumer.close() (2 of 2)."""
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    p = {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": own_postgres.url,
        "topics": topics,
    }
    run_extract(ListConnector(rows(40)), as_of=LAST_OF_JAN, batch_size=10, **p)
    run_gate(**p, until_idle=True)

    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "REGSYNC_KAFKA_BOOTSTRAP": stack.bootstrap_servers,
        "REGSYNC_REGISTRY_URL": stack.registry_url,
        "REGSYNC_DATABASE_URL": own_postgres.url,
        "REGSYNC_TOPIC_PREFIX": topics.prefix,
    }
    env.pop("REGSYNC_CRASH_AT", None)
    marker, go = tmp_path / "in-transaction", tmp_path / "go"
    script = LOAD_SCRIPT.format(marker=str(marker), go=str(go))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(marker, proc, 120)
    own_postgres.kill()
    began = time.monotonic()
    go.touch()
    try:
        _out, err = proc.communicate(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # where it hangs, for the failure message
        time.sleep(1)
        proc.kill()
        _out, err = proc.communicate()
        pytest.fail(f"load still running {BOUND_S}s after PostgreSQL was killed:\n{err[-6000:]}")
    took = time.monotonic() - began
    assert proc.returncode not in (0, -9), err
    assert took < BOUND_S

    own_postgres.restart()
    marker.unlink()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    engine = sa.create_engine(own_postgres.url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM institution_events")).scalar_one()
    finally:
        engine.dispose()
    assert stored == 40


def _kill_service(launcher, name: str) -> None:
    rec = launcher._load()[name]
    proc = psutil.Process(rec.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


GATE_SCRIPT = """
import faulthandler, signal, time
faulthandler.register(signal.SIGUSR1, all_threads=True)
from pathlib import Path
import regsync.stages.gate as gate
from regsync.kafka.topics import Topics

marker, go = Path({marker!r}), Path({go!r})
real = gate._judge_in_transaction
calls = 0

def paused(*args, **kwargs):
    global calls
    calls += 1
    if calls == 2 and not marker.exists():
        marker.touch()
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return real(*args, **kwargs)

gate._judge_in_transaction = paused
gate.run_gate(
    bootstrap={bootstrap!r}, registry_url={registry!r}, database_url={db!r},
    topics=Topics(prefix={prefix!r}), until_idle=True, max_records=10,
)
"""


@pytest.mark.slow
def test_broker_killed_under_the_gate_exits_nonzero_promptly_and_rerun_is_exactly_once(
    own_stack, stack, uid, database_url, tmp_path, monkeypatch
):
    """Was: the gate hung ≥120 s after a broker SIGKILL (1 in 3); with the broker gone for good, always."""
    ends = own_stack.endpoints()
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
    run_extract(ListConnector(rows(120)), as_of=LAST_OF_JAN, batch_size=20, **p)
    marker, go = tmp_path / "judging", tmp_path / "go"
    script = textwrap.dedent(GATE_SCRIPT).format(
        marker=str(marker),
        go=str(go),
        bootstrap=p["bootstrap"],
        registry=p["registry_url"],
        db=database_url,
        prefix=topics.prefix,
    )
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("REGSYNC_CRASH_AT", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(marker, proc, 120)
    _kill_service(own_stack, "kafka")
    go.touch()
    bound = 2 * BOUND_S
    try:
        _out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1)
        proc.kill()
        _out, err = proc.communicate()
        pytest.fail(f"gate still running {bound}s after the broker was killed:\n{err[-6000:]}")
    assert proc.returncode not in (0, -9), err

    own_stack.up()  # the broker comes back on the same ports, with its data
    marker.unlink()
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False, timeout=180
    )
    assert done.returncode == 0, done.stderr
    raw = {(r.partition, r.offset) for r in bus.scan(p["bootstrap"], topics.raw, {})}
    judged = [
        (int(bus.header(r, "regsync.raw_partition")), int(bus.header(r, "regsync.raw_offset")))
        for r in bus.scan(p["bootstrap"], topics.valid, {})
    ] + [
        (int(bus.header(r, "__connect.errors.partition")), int(bus.header(r, "__connect.errors.offset")))
        for r in bus.scan(p["bootstrap"], topics.rejected, {})
    ]
    assert len(raw) == 120
    assert sorted(judged) == sorted(raw)  # none lost, none twice
