"""regsync under a real Airflow scheduler: what ``dag.test()`` never shows.

A scheduler and a dag-processor (LocalExecutor) and an api-server on a free loopback port, with the
metadata database in a fresh database of the stack's PostgreSQL, run the DAGs folder as deployed. A
编制 simulator is seeded with last month's registrations; the test unpauses the DAGs, triggers the
extraction, waits for the gate run the Asset event starts, lets the monthly DAG catch up last month
when unpaused, re-runs that month and backfills it with the commands dags/README.md documents, and
checks the load manifest, the audit report, the county packages and the stored quality outcome.

Every wait polls the metadata database against a deadline. Every Airflow process is stopped by its
PID at the end: SIGTERM to each main process (the scheduler stops its LocalExecutor workers), then
SIGKILL to whatever of the tree is still there, process by process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.scheduler, pytest.mark.timeout(1800)]

DAGS = Path(__file__).resolve().parents[2] / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SHANGHAI = ZoneInfo("Asia/Shanghai")


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy, or fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@dataclass
class Cluster:
    """The running Airflow processes, their environment and the metadata database."""

    env: dict[str, str]
    home: Path
    metadata_url: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run ``airflow <args>`` as an operator would; its output (fails the test if it fails)."""
        began = time.perf_counter()
        done = subprocess.run(
            [AIRFLOW, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        print(f"[scheduler] airflow {' '.join(args[:2])}: {time.perf_counter() - began:.1f}s", flush=True)
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-4000:]}"
        return done.stdout

    def start(self, name: str, *args: str) -> None:
        """Start one long-running Airflow process in its own session, output to ``<home>/<name>.log``."""
        out = (self.home / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(  # our own venv's airflow
            [AIRFLOW, *args], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def query(self, sql: str, **params: Any) -> list[Any]:
        """Rows of one query against the metadata database."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.metadata_url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(sql), params))
        finally:
            engine.dispose()

    def runs(self, dag_id: str) -> list[Any]:
        """(run_id, run_type, state, logical_date) of every run of ``dag_id``, oldest first."""
        return self.query(
            "SELECT run_id, run_type, state, logical_date FROM dag_run WHERE dag_id = :d ORDER BY id",
            d=dag_id,
        )

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Wait until the run is finished; its final state."""

        def finished() -> str | None:
            for rid, _, state, _ in self.runs(dag_id):
                if rid == run_id and state in ("success", "failed"):
                    return str(state)
            self.check_alive()
            return None

        return str(wait_for(f"{dag_id} run {run_id} to finish", finished, timeout))

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """State of each task of one run."""
        rows = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = :d AND run_id = :r", d=dag_id, r=run_id
        )
        return {task: str(state) for task, state in rows}

    def check_alive(self) -> None:
        """Fail at once (with the process's log tail) if an Airflow process died."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM each main process, wait (bounded), then SIGKILL what is left of each tree, by PID."""
        import psutil

        trees: dict[int, list[psutil.Process]] = {}
        for proc in self.procs.values():
            try:
                trees[proc.pid] = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                trees[proc.pid] = []
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        for children in trees.values():
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()


@pytest.fixture
def cluster(stack: Any, uid: str, tmp_path: Path) -> Iterator[Cluster]:
    """Scheduler, dag-processor and api-server on loopback, metadata in a fresh PostgreSQL database."""
    import sqlalchemy as sa

    assert stack.database_url is not None
    admin = sa.create_engine(stack.database_url, isolation_level="AUTOCOMMIT")
    name = f"airflow_{uid}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    metadata_url = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "REGSYNC_"))}
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": metadata_url,  # psycopg 3 is sync and async
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    }
    cluster = Cluster(env=env, home=home, metadata_url=metadata_url)
    try:
        began = time.perf_counter()
        cluster.cli("db", "migrate", timeout=600)
        print(f"\n[scheduler] airflow db migrate: {time.perf_counter() - began:.1f}s")
        yield cluster
    finally:
        cluster.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def last_month(now: datetime) -> tuple[str, datetime, datetime]:
    """The month before ``now`` in Shanghai: ``YYYY-MM``, its first instant and the next month's."""
    this = now.astimezone(SHANGHAI).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (this - timedelta(days=1)).replace(day=1)
    return f"{start:%Y-%m}", start, this


def regsync_rows(database_url: str, month: str) -> dict[str, Any]:
    """The month's load manifests, county packages and stored quality runs in the regsync database."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {
                "manifests": [
                    dict(r._mapping)
                    for r in conn.execute(
                        sa.text("SELECT month, records, checksum FROM load_manifests WHERE month = :m"),
                        {"m": month},
                    )
                ],
                "packages": [
                    tuple(r)
                    for r in conn.execute(
                        sa.text("SELECT county_code, rows FROM county_pushes WHERE month = :m ORDER BY id"),
                        {"m": month},
                    )
                ],
                "quality": [
                    tuple(r)
                    for r in conn.execute(
                        sa.text(
                            "SELECT suite, success FROM quality_runs WHERE month = :m ORDER BY started_at"
                        ),
                        {"m": month},
                    )
                ],
            }
    finally:
        engine.dispose()


def test_the_dags_under_a_real_scheduler(cluster, regsync_env, tmp_path, monkeypatch, capsys):
    from regsync import jobs
    from regsync.settings import get_settings
    from simulators.bianzhi_db import BianzhiDb
    from simulators.world import WorldConfig, build_world

    began = time.perf_counter()
    month, month_start, month_end = last_month(datetime.now(SHANGHAI))
    pushed_at = month_end - timedelta(hours=4)  # 20:00 on the month's last day
    world = build_world(WorldConfig(months=(month,), institutions_per_month=20))
    sim = BianzhiDb(world, tmp_path / "bianzhi")
    notices = tmp_path / "notices.jsonl"
    try:
        assert sim.publish_until(pushed_at) > 0
        childcare = [t for t in sim.ground_truth() if t["childcare"]]
        cluster.env |= regsync_env | {
            "REGSYNC_SOURCES__BIANZHI_URL": sim.url,
            "REGSYNC_AIRFLOW__START_DATE": f"{month_start:%Y-%m-%d}",
            "REGSYNC_AIRFLOW__EXTRACT_SCHEDULE": "none",  # triggered here, not by the clock
            "REGSYNC_AIRFLOW__NOTIFY_FILE": str(notices),
        }
        monkeypatch.setenv("REGSYNC_SOURCES__BIANZHI_URL", sim.url)
        get_settings.cache_clear()
        jobs.prepare()  # the deployment step: topics, contracts, migrations

        cluster.start(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", cluster.env["AIRFLOW__API__PORT"]
        )
        cluster.start("dag-processor", "dag-processor")
        cluster.start("scheduler", "scheduler", "--skip-serve-logs")  # the log server binds every interface
        wanted = {"regsync_extract_bianzhi", "regsync_gate", "regsync_monthly"}

        def parsed() -> bool:
            cluster.check_alive()
            rows = cluster.query("SELECT dag_id FROM dag WHERE NOT is_stale")
            return wanted <= {r[0] for r in rows}

        wait_for("the dag-processor to serialize the DAGs", parsed, 180)
        assert cluster.query("SELECT count(*) FROM import_error")[0][0] == 0
        started = time.perf_counter()

        # The extraction: triggered with a logical date, the Asset event starts the gate by itself.
        for dag_id in ("regsync_extract_bianzhi", "regsync_gate"):
            cluster.cli("dags", "unpause", dag_id)
        cluster.cli(
            "dags", "trigger", "regsync_extract_bianzhi", "--run-id", "extract-1",
            "--logical-date", pushed_at.isoformat(),
        )  # fmt: skip
        assert cluster.wait_run("regsync_extract_bianzhi", "extract-1") == "success"
        gate_runs = wait_for("the Asset-triggered gate run", lambda: cluster.runs("regsync_gate"), 120)
        (gate_id, gate_type, _, _) = gate_runs[0]
        assert gate_type == "asset_triggered"
        assert cluster.wait_run("regsync_gate", gate_id) == "success"

        # Unpausing the monthly DAG catches up from the start date: exactly last month.
        cluster.cli("dags", "unpause", "regsync_monthly")
        first = wait_for("the monthly catchup run", lambda: cluster.runs("regsync_monthly"), 120)
        (run_id, run_type, _, logical) = first[0]
        assert run_type == "scheduled"
        assert logical == month_start
        state = cluster.wait_run("regsync_monthly", run_id, timeout=600)
        assert state == "success", cluster.task_states("regsync_monthly", run_id)
        assert len(cluster.runs("regsync_monthly")) == 1  # no other month was due
        loaded = regsync_rows(regsync_env["REGSYNC_DATABASE_URL"], month)
        (manifest,) = loaded["manifests"]
        assert 0 < manifest["records"] <= len(childcare)
        assert loaded["packages"] and sum(rows for _, rows in loaded["packages"]) > 0
        assert sorted(loaded["quality"]) == [("gate_batch", True), ("monthly", True)]
        report = Path(regsync_env["REGSYNC_OUTPUT_DIR"]) / "reports" / f"audit-{month}.html"
        assert report.stat().st_size > 0
        monthly_seconds = time.perf_counter() - started

        # Re-run the month the documented way: the month param; the load is a no-op.
        cluster.cli(
            "dags",
            "trigger",
            "regsync_monthly",
            "--run-id",
            "rerun-1",
            "--conf",
            json.dumps({"month": month}),
        )
        state = cluster.wait_run("regsync_monthly", "rerun-1", timeout=600)
        assert state == "success", cluster.task_states("regsync_monthly", "rerun-1")
        again = regsync_rows(regsync_env["REGSYNC_DATABASE_URL"], month)
        assert again["manifests"] == loaded["manifests"]
        assert len(again["quality"]) == 4  # each run's outcomes stored for the trend

        # A manual run without a month is refused, naming the fix; the notifier says so.
        cluster.cli("dags", "trigger", "regsync_monthly", "--run-id", "no-month")
        assert cluster.wait_run("regsync_monthly", "no-month") == "failed"
        assert cluster.task_states("regsync_monthly", "no-month")["load"] == "failed"
        failures = [json.loads(line) for line in notices.read_text().splitlines()]
        assert any(n["event"] == "failure" and "needs the month" in n["error"] for n in failures)

        # The documented backfill of one month: dates in regsync's zone, a completed month run again.
        start_text = month_start.isoformat()
        cluster.cli(
            "backfill", "create", "--dag-id", "regsync_monthly", "--from-date", start_text,
            "--to-date", start_text, "--reprocess-behavior", "completed",
        )  # fmt: skip
        backfills = [r for r in cluster.runs("regsync_monthly") if r[1] == "backfill"]
        assert [r[3] for r in backfills] == [month_start]  # that month, and only it
        state = cluster.wait_run("regsync_monthly", backfills[0][0], timeout=600)
        assert state == "success", cluster.task_states("regsync_monthly", backfills[0][0])
        assert regsync_rows(regsync_env["REGSYNC_DATABASE_URL"], month)["manifests"] == loaded["manifests"]
    finally:
        sim.close()
    with capsys.disabled():
        print(
            f"\n[scheduler] real-scheduler test body {time.perf_counter() - began:.1f}s "
            f"(extraction → gate → first monthly run: {monthly_seconds:.1f}s)"
        )
