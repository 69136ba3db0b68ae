"""A single-node Apache Kafka broker in KRaft mode, run from jars on a classpath."""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

from regsync.stack.errors import ServiceStartError
from regsync.stack.prereq import Java
from regsync.stack.process import ServiceRecord, spawn, wait_ready

NAME = "kafka"

LOG4J2 = """\
# Kafka's own logs go to a file in the state folder; the console stays quiet.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _server_properties(data_dir: Path, broker_port: int, controller_port: int) -> str:
    """Static quorum, replication factor 1 everywhere, no rebalance delay: a dev/test broker."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{broker_port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{broker_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data_dir}",
            "num.partitions=3",
            "default.replication.factor=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=3",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # Fast fencing of a killed broker, so a restarted one registers in seconds, not 9 s+.
            "broker.heartbeat.interval.ms=500",
            "broker.session.timeout.ms=3000",
            # Consumers of old months read by timestamp: keep everything unless told otherwise.
            "log.retention.hours=-1",
            "log.message.timestamp.type=CreateTime",
            # Replayed months carry old create-times; the broker must accept them.
            "log.message.timestamp.before.max.ms=9223372036854775807",
            "auto.create.topics.enable=false",
            "",
        ]
    )


def _cluster_id() -> str:
    """A KRaft cluster id; it may start with "-", so callers pass it as --cluster-id=ID."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def start(
    state_dir: Path, libs: Path, java: Java, broker_port: int, controller_port: int, heap: str
) -> ServiceRecord:
    """Format storage on first start, then launch ``kafka.Kafka`` in its own JVM."""
    import subprocess

    home = state_dir / NAME
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    props.write_text(_server_properties(data, broker_port, controller_port))
    (home / "log4j2.properties").write_text(LOG4J2.format(log_dir=home))
    classpath = f"{libs}/*"
    jvm = [
        str(java.executable),
        f"-Xmx{heap}",
        "-Xms128m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={home}",
        "-cp",
        classpath,
    ]
    if not (data / "meta.properties").exists():
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c", str(props)],
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise ServiceStartError(NAME, "storage format failed", (fmt.stdout + fmt.stderr)[-3000:])
    log = home / "stdout.log"
    proc = spawn([*jvm, "kafka.Kafka", str(props)], log)
    return ServiceRecord(
        name=NAME,
        pid=proc.pid,
        create_time=proc.create_time(),
        log=str(home / "server.log"),
        endpoints={"bootstrap": f"127.0.0.1:{broker_port}"},
        ports={"broker": broker_port, "controller": controller_port},
        extra={"stdout": str(log)},
    )


def probe(bootstrap: str) -> bool:
    """Ready when the broker answers a metadata request listing itself as an unfenced broker."""
    import socket

    host, port = bootstrap.rsplit(":", 1)
    # A plain TCP connect first: kafka-python backs off for up to 30 s after a refused bootstrap,
    # which would make a probe sent too early delay readiness by that much.
    with socket.create_connection((host, int(port)), timeout=2):
        pass
    # A probe sent while the broker boots makes kafka-python log connection errors: quiet them for
    # the probe only, and put the caller's level back.
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        return _describe(bootstrap)
    finally:
        kafka_log.setLevel(level)


def _describe(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=3000,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=500,
    )
    try:
        cluster = admin.describe_cluster()
        brokers = cluster.get("brokers") or []
        return cluster.get("controller_id", -1) != -1 and any(not b.get("is_fenced") for b in brokers)
    finally:
        admin.close()


def wait(record: ServiceRecord, proc: object, timeout: float) -> float:
    """Block until the broker is ready; returns seconds waited."""
    return wait_ready(
        NAME,
        lambda: probe(record.endpoints["bootstrap"]),
        proc=proc,
        log_path=Path(record.extra["stdout"]),
        timeout=timeout,
    )
