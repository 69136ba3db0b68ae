"""Apache Kafka in KRaft mode, run from jars on a classpath: one node, or a cluster of a few.

Every node is broker and controller (combined mode) on its own loopback ports; with three nodes
the quorum survives one killed node, and the internal topics get replication 3 and min ISR 2.
"""

from __future__ import annotations

import base64
import logging
import uuid
from pathlib import Path

from regsync.stack.errors import ServiceStartError
from regsync.stack.kafka_secrets import MECHANISM, NODE_PRINCIPAL, KafkaSecrets, scram_arguments
from regsync.stack.prereq import Java
from regsync.stack.process import ServiceRecord, spawn, wait_ready

NAME = "kafka"


def node_name(node_id: int) -> str:
    """``kafka`` for node 1 (as before clusters existed), ``kafka-2``, ``kafka-3``… for the others."""
    return NAME if node_id == 1 else f"{NAME}-{node_id}"


def replication_for(nodes: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) a cluster of ``nodes`` gives its topics."""
    replication = min(3, nodes)
    return replication, (2 if replication >= 3 else 1)


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


def _listener_properties(
    broker_port: int,
    controller_port: int,
    secure: KafkaSecrets | None,
    *,
    bind: str = "127.0.0.1",
    advertise: str = "127.0.0.1",
    host_listener: tuple[int, str, int] | None = None,
) -> list[str]:
    """PLAINTEXT everywhere, or SASL_SSL (SCRAM) for clients and mutual TLS between the nodes.

    Secure: the client listener authenticates every connection with SCRAM-SHA-512 over TLS; the
    nodes talk to each other over the same listener as ``admin``, and to the controllers over TLS
    with client certificates (principal ``User:CN=regsync-kafka-node``). The ``StandardAuthorizer``
    denies whatever no ACL allows; only the admin and the nodes are super users.

    ``bind``/``advertise`` are loopback for the local stack; compose binds every interface and
    advertises the service name. ``host_listener`` (port, advertised host, advertised port) adds
    compose's ``HOST`` listener for tools on the host: SASL_SSL as well, never plain.
    """
    if secure is None:
        if host_listener is not None:
            raise ValueError("a HOST listener is only built secure")
        return [
            f"listeners=PLAINTEXT://{bind}:{broker_port},CONTROLLER://{bind}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{advertise}:{broker_port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    admin = secure.password("admin")
    tls = [
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={secure.node_keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={secure.ca_file}",
        "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        "ssl.endpoint.identification.algorithm=https",
    ]
    listeners = f"SASL_SSL://{bind}:{broker_port},CONTROLLER://{bind}:{controller_port}"
    advertised = f"SASL_SSL://{advertise}:{broker_port}"
    protocols = "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    host: list[str] = []
    if host_listener is not None:
        port, advertised_host, advertised_port = host_listener
        listeners += f",HOST://{bind}:{port}"
        advertised += f",HOST://{advertised_host}:{advertised_port}"
        protocols += ",HOST:SASL_SSL"
        # A SASL listener needs a login section even when no node logs in through it.
        host = [
            "listener.name.host.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ]
    return [
        f"listeners={listeners}",
        f"advertised.listeners={advertised}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=SASL_SSL",
        f"listener.security.protocol.map={protocols}",
        *tls,
        "listener.name.controller.ssl.client.auth=required",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="{admin}";',
        *host,
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users=User:admin;{NODE_PRINCIPAL}",
    ]


def server_properties(
    data_dir: Path,
    broker_port: int,
    controller_port: int,
    node_id: int = 1,
    voters: str | None = None,
    nodes: int = 1,
    secure: KafkaSecrets | None = None,
    *,
    bind: str = "127.0.0.1",
    advertise: str = "127.0.0.1",
    host_listener: tuple[int, str, int] | None = None,
    dev: bool = True,
) -> str:
    """Static quorum, no rebalance delay: a dev/test node (replication 1, or 3 with min ISR 2).

    ``dev`` (the local stack) adds fast fencing and small internal topics; compose, a
    production-like deployment, keeps Kafka's defaults for those and otherwise runs this same file.
    """
    replication, min_isr = replication_for(nodes)
    fencing = [
        # Fast fencing of a killed broker, so a restarted one registers in seconds, not 9 s+.
        "broker.heartbeat.interval.ms=500",
        "broker.session.timeout.ms=3000",
    ]
    listeners = _listener_properties(
        broker_port, controller_port, secure, bind=bind, advertise=advertise, host_listener=host_listener
    )
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters or f'{node_id}@127.0.0.1:{controller_port}'}",
            *listeners,
            f"log.dirs={data_dir}",
            "num.partitions=3",
            f"default.replication.factor={replication}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replication}",
            *(["offsets.topic.num.partitions=3"] if dev else []),
            f"transaction.state.log.replication.factor={replication}",
            f"transaction.state.log.min.isr={min_isr}",
            *(["transaction.state.log.num.partitions=3"] if dev else []),
            f"share.coordinator.state.topic.replication.factor={replication}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            "group.initial.rebalance.delay.ms=0",
            *(fencing if dev else []),
            # Consumers of old months read by timestamp: keep everything unless told otherwise.
            "log.retention.hours=-1",
            "log.message.timestamp.type=CreateTime",
            # Replayed months carry old create-times; the broker must accept them.
            "log.message.timestamp.before.max.ms=9223372036854775807",
            "auto.create.topics.enable=false",
            # A killed node that comes back catches up and takes its leaderships back by itself.
            "unclean.leader.election.enable=false",
            "",
        ]
    )


#: The name the unit tests knew it by; compose renders its brokers with :func:`server_properties` too.
_server_properties = server_properties


def existing_cluster_id(state_dir: Path, nodes: int) -> str | None:
    """The cluster id a node of this state folder was formatted with, so new nodes join it."""
    for node_id in range(1, max(nodes, 1) + 1):
        meta = state_dir / node_name(node_id) / "data" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
    return None


def new_cluster_id() -> str:
    """A KRaft cluster id; it may start with "-", so callers pass it as --cluster-id=ID."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def start(
    state_dir: Path,
    libs: Path,
    java: Java,
    broker_port: int,
    controller_port: int,
    heap: str,
    *,
    node_id: int = 1,
    voters: str | None = None,
    nodes: int = 1,
    cluster_id: str | None = None,
    secure: KafkaSecrets | None = None,
) -> ServiceRecord:
    """Format storage on first start (one cluster id for every node), then launch ``kafka.Kafka``."""
    import subprocess

    name = node_name(node_id)
    home = state_dir / name
    data = home / "data"
    home.mkdir(parents=True, exist_ok=True)
    props = home / "server.properties"
    text = server_properties(data, broker_port, controller_port, node_id, voters, nodes, secure)
    # Secure: the file holds the admin's SCRAM password (inter-broker login), so only its owner reads it.
    props.touch(mode=0o600)
    props.chmod(0o600)
    props.write_text(text)
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
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id or new_cluster_id()}",
                "-c",
                str(props),
                *(scram_arguments(secure) if secure is not None else []),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise ServiceStartError(name, "storage format failed", (fmt.stdout + fmt.stderr)[-3000:])
    log = home / "stdout.log"
    proc = spawn([*jvm, "kafka.Kafka", str(props)], log)
    return ServiceRecord.of(
        proc,
        name=name,
        log=str(home / "server.log"),
        endpoints={"bootstrap": f"127.0.0.1:{broker_port}"},
        ports={"broker": broker_port, "controller": controller_port},
        extra={"stdout": str(log), "node_id": node_id, "secure": secure is not None},
    )


def probe(bootstrap: str, node_id: int | None = None, security: dict[str, object] | None = None) -> bool:
    """Ready when the broker answers a metadata request listing itself (or any node) unfenced."""
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
        return _describe(bootstrap, node_id, security or {})
    finally:
        kafka_log.setLevel(level)


def _describe(bootstrap: str, node_id: int | None, security: dict[str, object]) -> bool:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        **security,
        bootstrap_servers=bootstrap,
        request_timeout_ms=3000,
        reconnect_backoff_ms=50,
        reconnect_backoff_max_ms=500,
    )
    try:
        cluster = admin.describe_cluster()
        brokers = cluster.get("brokers") or []
        unfenced = {b.get("broker_id") for b in brokers if not b.get("is_fenced")}
        if node_id is not None:
            return cluster.get("controller_id", -1) != -1 and node_id in unfenced
        return cluster.get("controller_id", -1) != -1 and bool(unfenced)
    finally:
        admin.close()


def admin_security(state_dir: Path) -> dict[str, object]:
    """kafka-python arguments that log a secure stack's admin in (TLS against the stack's CA)."""
    from regsync.stack import kafka_secrets

    found = kafka_secrets.load(state_dir)
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": "admin",
        "sasl_plain_password": found.password("admin"),
        "ssl_cafile": str(found.ca_file),
    }


def wait(
    record: ServiceRecord, proc: object, timeout: float, security: dict[str, object] | None = None
) -> float:
    """Block until the broker is ready; returns seconds waited."""
    return wait_ready(
        record.name,
        lambda: probe(record.endpoints["bootstrap"], record.extra.get("node_id"), security),
        proc=proc,
        log_path=Path(record.extra["stdout"]),
        timeout=timeout,
    )
