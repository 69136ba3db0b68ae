"""Kafka Connect with Debezium's JDBC sink, sinking ``registrations.valid`` into PostgreSQL: the peer.

The bench measures our load beside the tool most teams would reach for first. Everything comes from
Maven Central, resolved once into ``<cache>/connect-peer-<versions>/`` (Maven does the resolving, as
:mod:`regsync.stack.artifacts` does for the stack):

* ``libs/`` — the worker: ``org.apache.kafka:connect-runtime``, ``connect-json``, ``connect-transforms``
  (the broker's version) and log4j 2;
* ``plugins/jdbc-sink/`` — ``io.debezium:debezium-connector-jdbc`` with its runtime dependencies (the
  PostgreSQL driver, Hibernate);
* ``plugins/avro-converter/`` — ``io.apicurio:apicurio-registry-utils-converter`` (the jar alone: its
  parent POM is not published) and ``apicurio-registry-avro-serde-kafka`` with its dependencies. It
  reads the Confluent wire format (magic byte, 4-byte id) that our producers write; on Apicurio 3 the
  Confluent-compatible ids are content ids.

Jackson is removed from the plugin folders so the worker's own Jackson is used (otherwise the
``ServiceLoader`` of the worker's Jackson finds the plugin's modules and fails), and ``kafka-clients``
because the worker's is the one that loads anyway.

``python -m bench.peers.connect '<json config>'`` is one bench stage (see :func:`stage`): start a
standalone worker on free loopback ports with a modest heap, wait for its REST API, submit the sink,
poll ``count(*)`` of its table until it holds ``expected`` rows (bounded; timed from submitting
the connector, so JVM start-up is reported apart, as ``startup_s``), stop the worker (SIGTERM,
then SIGKILL, by PID) and write the figures: events/s, JVM peak RSS (``VmHWM`` and psutil samples),
JVM CPU seconds. The JVM dies with its parent (``PR_SET_PDEATHSIG``), so nothing is left running
when the bench is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MARKER = ".complete"
CONNECTOR = "regsync-peer-jdbc-sink"
TABLE = "peer_connect_valid"
# Top-level arrays of the event with no column to go to (``institution.service_forms`` becomes text[]).
DROPPED_FIELDS = ("changed_fields", "quality_warnings")


@dataclass(frozen=True, slots=True)
class Versions:
    """What the peer is made of. Kafka follows the broker; the rest are the newest that resolve here."""

    kafka: str = "4.1.2"
    log4j: str = "2.25.2"
    debezium: str = "3.4.0.Final"  # 3.4.3.Final: io.debezium:debezium-sink:3.4.3.Final is not served
    converter: str = "3.0.9"  # the registry's version
    serde: str = "3.0.2"  # 3.0.7 needs an apicurio-registry-serde-common that is not served

    def folder(self) -> str:
        """The cache folder's name: every version in it, so a change resolves afresh."""
        return f"connect-peer-{self.kafka}-dbz{self.debezium}-apicurio{self.converter}-serde{self.serde}"


@dataclass(frozen=True, slots=True)
class Resolved:
    """The worker's classpath folder and its plugin path."""

    libs: Path
    plugins: Path
    fetch_seconds: float


# --------------------------------------------------------------------------------------------------
# resolving


def _maven(args: list[str], what: str) -> None:
    from regsync.stack.prereq import find_maven

    proc = subprocess.run([str(find_maven()), "-B", "-q", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"Maven could not fetch {what} (exit {proc.returncode}):\n{tail}")


def _copy_dependencies(pom: str, properties: dict[str, str], out: Path, what: str) -> None:
    _maven(
        [
            "-f",
            str(HERE / pom),
            "dependency:copy-dependencies",
            *(f"-D{k}={v}" for k, v in properties.items()),
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out}",
        ],
        what,
    )


def prune_plugin(folder: Path) -> list[str]:
    """Drop the jars the worker must supply itself (Jackson, kafka-clients); the names dropped."""
    dropped = []
    for jar in sorted(folder.glob("*.jar")):
        if jar.name.startswith(
            ("jackson-annotations-", "jackson-core-", "jackson-databind-", "kafka-clients-")
        ):
            jar.unlink()
            dropped.append(jar.name)
    return dropped


def resolve(cache_dir: Path, versions: Versions = Versions()) -> Resolved:
    """The worker and its two plugins under ``cache_dir``; fetched once, then reused offline."""
    from regsync.stack.artifacts import folder_lock

    target = cache_dir / versions.folder()
    with folder_lock(cache_dir, ".fetch.lock"):
        if (target / MARKER).exists():
            return Resolved(target / "libs", target / "plugins", 0.0)
        began = time.monotonic()
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        sink, converter = staging / "plugins" / "jdbc-sink", staging / "plugins" / "avro-converter"
        _copy_dependencies(
            "connect-runtime-pom.xml",
            {"kafka.version": versions.kafka, "log4j.version": versions.log4j},
            staging / "libs",
            f"Kafka Connect {versions.kafka}",
        )
        _copy_dependencies(
            "jdbc-sink-pom.xml",
            {"debezium.version": versions.debezium},
            sink,
            f"io.debezium:debezium-connector-jdbc:{versions.debezium}",
        )
        _copy_dependencies(
            "avro-converter-pom.xml",
            {"serde.version": versions.serde},
            converter,
            f"io.apicurio:apicurio-registry-avro-serde-kafka:{versions.serde}",
        )
        _maven(
            [
                "-f",
                str(HERE / "avro-converter-pom.xml"),
                "dependency:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-utils-converter:{versions.converter}:jar",
                "-Dtransitive=false",
                f"-DoutputDirectory={converter}",
            ],
            f"io.apicurio:apicurio-registry-utils-converter:{versions.converter}",
        )
        dropped = prune_plugin(sink) + prune_plugin(converter)
        (staging / MARKER).write_text(json.dumps({"versions": str(versions), "dropped": dropped}))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        return Resolved(target / "libs", target / "plugins", time.monotonic() - began)


# --------------------------------------------------------------------------------------------------
# configuration (pure)


def registry_api(ccompat_url: str) -> str:
    """Apicurio's own v3 API beside its Confluent-compatible one (what the converter speaks)."""
    base = ccompat_url.rstrip("/")
    for suffix in ("/apis/ccompat/v7", "/apis/ccompat/v6"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/apis/registry/v3"


def jdbc(database_url: str) -> tuple[str, str, str]:
    """(JDBC URL, user, password) of a SQLAlchemy PostgreSQL URL."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    host = url.host or "127.0.0.1"
    port = f":{url.port}" if url.port else ""
    return f"jdbc:postgresql://{host}{port}/{url.database}", url.username or "", url.password or ""


def worker_properties(bootstrap: str, rest_port: int, plugins: Path, offsets_file: Path) -> dict[str, str]:
    """A standalone worker: loopback REST port, plugins scanned from ``plugins``, overrides allowed."""
    return {
        "bootstrap.servers": bootstrap,
        "listeners": f"http://127.0.0.1:{rest_port}",
        "rest.advertised.host.name": "127.0.0.1",
        "plugin.path": str(plugins),
        "plugin.discovery": "only_scan",  # the converter jar has no ServiceLoader manifest
        "offset.storage.file.filename": str(offsets_file),
        "offset.flush.interval.ms": "10000",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "connector.client.config.override.policy": "All",
    }


def connector_config(
    *,
    topic: str,
    registry_url: str,
    database_url: str,
    insert_mode: str = "upsert",
    batch_size: int = 2000,
    max_poll_records: int = 2000,
    tasks: int = 1,
) -> dict[str, str]:
    """Debezium's JDBC sink on ``topic``: Avro values through the registry, flattened into one table.

    Arrays at the top level are dropped (no column for them), nested records flattened with ``_``;
    the table (30 columns) is created by the connector, keyed on ``event_id``. The valid topic is
    written in Kafka transactions, so the sink reads ``read_committed`` as our load does.
    """
    url, user, password = jdbc(database_url)
    config = {
        "name": CONNECTOR,
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": str(tasks),
        "topics": topic,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "io.apicurio.registry.utils.converter.AvroConverter",
        "value.converter.apicurio.registry.url": registry_api(registry_url),
        "value.converter.apicurio.registry.use-id": "contentId",
        "value.converter.apicurio.registry.headers.enabled": "false",
        "transforms": "drop,flatten",
        "transforms.drop.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "transforms.drop.exclude": ",".join(DROPPED_FIELDS),
        "transforms.flatten.type": "org.apache.kafka.connect.transforms.Flatten$Value",
        "transforms.flatten.delimiter": "_",
        "connection.url": url,
        "connection.username": user,
        "connection.password": password,
        "insert.mode": insert_mode,
        "delete.enabled": "false",
        "primary.key.mode": "record_value",
        "primary.key.fields": "event_id",
        "schema.evolution": "basic",
        "collection.name.format": TABLE,
        "batch.size": str(batch_size),
        "consumer.override.isolation.level": "read_committed",
        "consumer.override.auto.offset.reset": "earliest",
        "consumer.override.max.poll.records": str(max_poll_records),
        "errors.tolerance": "none",
    }
    return config


def render(properties: dict[str, str]) -> str:
    """Java ``.properties`` text: one ``key=value`` a line, ``\\``, ``=``, ``:`` and ``#`` escaped."""

    def escape(text: str, key: bool) -> str:
        out = text.replace("\\", "\\\\").replace("\n", "\\n")
        for ch in ("=", ":", "#", "!") + ((" ",) if key else ()):
            out = out.replace(ch, "\\" + ch)
        return out

    return "".join(f"{escape(k, True)}={escape(v, False)}\n" for k, v in properties.items())


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c{1})%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.connect.name = org.apache.kafka.connect.runtime
logger.connect.level = info
logger.rest.name = org.apache.kafka.connect.runtime.rest.RestServer
logger.rest.level = warn
"""


# --------------------------------------------------------------------------------------------------
# running


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _peak_rss_mib(pid: int) -> float | None:
    """The kernel's high-water mark of the process's resident set (VmHWM)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


class Worker:
    """One standalone Connect worker, a child of this process."""

    def __init__(self, resolved: Resolved, workdir: Path, bootstrap: str, heap: str = "1g") -> None:
        from regsync.stack.prereq import find_java
        from regsync.stack.process import free_port

        workdir.mkdir(parents=True, exist_ok=True)
        self.rest_port = free_port()
        self.log = workdir / "connect.log"
        (workdir / "worker.properties").write_text(
            render(worker_properties(bootstrap, self.rest_port, resolved.plugins, workdir / "offsets"))
        )
        (workdir / "log4j2.properties").write_text(LOG4J2)
        self.cmd = [
            str(find_java().executable),
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
            "-cp",
            f"{resolved.libs}/*",
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(workdir / "worker.properties"),
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.samples: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def start(self, timeout: float = 180.0) -> float:
        """Start the JVM and wait for its REST API; seconds until ready."""
        import httpx
        import psutil

        from regsync.stack.process import wait_ready

        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # before any thread of this stage process starts
            )

        def probe() -> bool:
            return httpx.get(f"{self.url}/connector-plugins", timeout=3.0).status_code == 200

        return wait_ready(
            "Kafka Connect", probe, proc=psutil.Process(self.proc.pid), log_path=self.log, timeout=timeout
        )

    def submit(self, config: dict[str, str]) -> None:
        import httpx

        name = config["name"]
        body = {k: v for k, v in config.items() if k != "name"}
        response = httpx.put(f"{self.url}/connectors/{name}/config", json=body, timeout=60.0)
        if response.status_code >= 300:
            raise RuntimeError(f"Connect refused the connector ({response.status_code}): {response.text}")

    def failure(self, name: str) -> str | None:
        """The trace of a failed connector or task, else None."""
        import httpx

        with contextlib.suppress(httpx.HTTPError, ValueError):
            status = httpx.get(f"{self.url}/connectors/{name}/status", timeout=5.0).json()
            for part in [status.get("connector", {}), *status.get("tasks", [])]:
                if part.get("state") == "FAILED":
                    return str(part.get("trace", "FAILED"))
        return None

    def sample(self) -> None:
        import psutil

        if self.proc is not None:
            with contextlib.suppress(psutil.Error):
                self.samples.append(psutil.Process(self.proc.pid).memory_info().rss / 2**20)

    def usage(self) -> dict[str, float]:
        """Peak RSS (kernel high-water mark and sampled) and CPU seconds of the JVM so far."""
        import psutil

        assert self.proc is not None
        out: dict[str, float] = {"peak_rss_sampled_mib": max(self.samples, default=0.0)}
        hwm = _peak_rss_mib(self.proc.pid)
        if hwm is not None:
            out["peak_rss_mib"] = hwm
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(self.proc.pid).cpu_times()
            out["cpu_s"] = t.user + t.system
        return out

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """SIGTERM (Connect stops its tasks and commits), then SIGKILL; by our own child's PID."""
        if self.proc is None or self.proc.poll() is not None:
            return {}
        began = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        killed = False
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            killed = True
        return {"stop_s": time.perf_counter() - began, "exit_code": self.proc.returncode, "killed": killed}


def _rows(conn: Any) -> int:
    row = conn.execute(f"SELECT CASE WHEN to_regclass('{TABLE}') IS NULL THEN -1 END").fetchone()
    if row and row[0] == -1:
        return 0
    counted = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    return int(counted[0]) if counted else 0


def stage(cfg: dict[str, Any]) -> dict[str, Any]:
    """Sink the scenario's valid topic with Connect; the figures for :mod:`bench.run`."""
    import psycopg

    from bench.stages import Ticker
    from regsync.kafka.topics import Topics

    resolved = Resolved(Path(cfg["libs"]), Path(cfg["plugins"]), 0.0)
    expected = int(cfg["expected"])
    workdir = Path(cfg["workdir"])
    topic = Topics(prefix=cfg["prefix"], partitions=cfg["partitions"]).valid
    config = connector_config(
        topic=topic,
        registry_url=cfg["registry_url"],
        database_url=cfg["database_url"],
        insert_mode=cfg.get("insert_mode", "upsert"),
        batch_size=cfg.get("batch_size", 2000),
        max_poll_records=cfg.get("max_poll_records", 2000),
        tasks=cfg.get("tasks", 1),
    )
    worker = Worker(resolved, workdir, cfg["bootstrap"], heap=cfg.get("heap", "1g"))
    url = cfg["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    deadline_s = float(cfg.get("timeout_s", 1800))
    polls = 0
    first_row: tuple[float, int] | None = None  # (seconds after submitting, rows then)
    try:
        startup = worker.start()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
            began = time.perf_counter()
            worker.submit(config)
            tick = Ticker(f"{cfg['label']} connect", expected)
            rows = 0
            while True:
                rows = _rows(conn)
                polls += 1
                worker.sample()
                elapsed = time.perf_counter() - began
                if rows and first_row is None:
                    first_row = (elapsed, rows)
                tick(rows)
                if rows >= expected:
                    break
                trace = worker.failure(CONNECTOR)
                if trace is not None:
                    raise RuntimeError(f"the Connect sink failed after {rows} rows:\n{trace[:3000]}")
                if elapsed > deadline_s:
                    raise RuntimeError(f"Connect wrote {rows} of {expected} rows in {deadline_s:.0f} s")
                # Poll often near the end, seldom before: count(*) of a large table costs PostgreSQL.
                rate = rows / elapsed if rows else 0.0
                remaining = (expected - rows) / rate if rate else 1.0
                time.sleep(min(max(remaining / 8, 0.05), 1.0))
            seconds = time.perf_counter() - began
            usage = worker.usage()
            columns = conn.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = %s", (TABLE,)
            ).fetchone()
    finally:
        stopped = worker.stop()
    tick(rows, force=True)
    first_s, first_rows = first_row or (seconds, 0)
    steady = (rows - first_rows) / (seconds - first_s) if seconds > first_s else 0.0
    return {
        "events": rows,
        "seconds": seconds,
        "startup_s": startup,
        "first_rows_after_s": first_s,
        "steady_events_per_s": steady,
        "polls": polls,
        "table_columns": int(columns[0]) if columns else 0,
        "jvm_heap": cfg.get("heap", "1g"),
        "jvm_peak_rss_mib": usage.get("peak_rss_mib", usage["peak_rss_sampled_mib"]),
        "jvm_peak_rss_sampled_mib": usage["peak_rss_sampled_mib"],
        "jvm_cpu_s": usage.get("cpu_s", 0.0),
        "insert_mode": config["insert.mode"],
        "batch_size": int(config["batch.size"]),
        "max_poll_records": int(config["consumer.override.max.poll.records"]),
        "tasks": int(config["tasks.max"]),
        "worker_stop": stopped,
    }


def main() -> None:
    cfg: dict[str, Any] = json.loads(sys.argv[1])
    figures = stage(cfg)
    Path(cfg["out"]).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
