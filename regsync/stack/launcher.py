"""``regsync stack up|down|status`` and the same code for the pytest fixtures.

State lives in ``<state_dir>/stack.json``; a file lock serialises concurrent ``up``/``down``. ``up``
is idempotent (a running, ready stack is left alone), recovers a stale state folder (records whose
processes are gone), and reuses the previous ports when they are still free so endpoints stay put.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from regsync.settings import StackSettings
from regsync.stack import kafka_acls, kafka_broker, kafka_secrets, postgres_cluster, schema_registry
from regsync.stack.artifacts import apicurio_app, kafka_libs
from regsync.stack.errors import ServiceStartError
from regsync.stack.prereq import find_java, find_postgres
from regsync.stack.process import ServiceRecord, find, free_port, port_is_free, stop

STATE_FILE = "stack.json"
ORDER = (postgres_cluster.NAME, kafka_broker.NAME, schema_registry.NAME)


def _is_kafka(name: str) -> bool:
    return name == kafka_broker.NAME or name.startswith(kafka_broker.NAME + "-")


Reporter = Callable[[str], None]


@dataclass(slots=True)
class Timing:
    """How long each part of ``up`` took, for the operator and for the benchmark notes."""

    fetch: dict[str, float] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What clients need to reach a running stack."""

    bootstrap_servers: str
    registry_url: str
    database_url: str | None
    # the registry's admin, when it authenticates writes; kept out of the repr
    registry_auth: tuple[str, str] | None = field(default=None, repr=False)
    #: Secure stacks only: the folder with ``ca.pem``, ``users.json`` and ``client.env``.
    kafka_secrets_dir: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One line of ``stack status``."""

    name: str
    running: bool
    ready: bool
    pid: int | None
    endpoints: dict[str, str]
    rss_mb: float | None
    log: str | None


class Stack:
    """The local stack rooted at one state folder."""

    def __init__(self, settings: StackSettings, report: Reporter | None = None) -> None:
        self.settings = settings
        self.state_dir = Path(settings.state_dir).absolute()
        self.report: Reporter = report or (lambda _msg: None)
        self.timing = Timing()
        self._port_lock = threading.Lock()

    # state file -------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        """Where the records of running services are kept."""
        return self.state_dir / STATE_FILE

    def _load(self) -> dict[str, ServiceRecord]:
        try:
            raw = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {name: ServiceRecord.from_json(rec) for name, rec in raw.get("services", {}).items()}

    def _save(self, records: dict[str, ServiceRecord], last_ports: dict[str, dict[str, int]]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        payload: dict[str, Any] = {
            "services": {n: r.to_json() for n, r in records.items()},
            "last_ports": last_ports,
        }
        tmp.write_text(json.dumps(payload, indent=2))
        tmp.replace(self.state_file)

    def _last_ports(self) -> dict[str, dict[str, int]]:
        try:
            return dict(json.loads(self.state_file.read_text()).get("last_ports", {}))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ports ------------------------------------------------------------------------------------
    def _port(self, previous: dict[str, int], key: str, taken: set[int]) -> int:
        with self._port_lock:
            return self._port_unlocked(previous, key, taken)

    def _port_unlocked(self, previous: dict[str, int], key: str, taken: set[int]) -> int:
        port = previous.get(key)
        if port and port not in taken and port_is_free(port):
            taken.add(port)
            return port
        port = free_port(taken)
        taken.add(port)
        return port

    # secure mode ------------------------------------------------------------------------------
    @property
    def secure(self) -> bool:
        """Asked for (``--secure``), or this state folder was started secure before (no silent downgrade)."""
        return self.settings.secure or (self.state_dir / kafka_secrets.FOLDER / "users.json").exists()

    def kafka_security(self) -> dict[str, object]:
        """kafka-python arguments of the stack's admin ({} on a plain stack)."""
        return kafka_broker.admin_security(self.state_dir) if self.secure else {}

    def _prepare_secure(self, records: dict[str, ServiceRecord]) -> kafka_secrets.KafkaSecrets | None:
        if not self.secure:
            return None
        fresh = not (self.state_dir / kafka_secrets.FOLDER / "users.json").exists()
        formatted = kafka_broker.existing_cluster_id(self.state_dir, len(self.kafka_names(records)))
        if fresh and formatted:
            from schemas.errors import ConfigurationError

            # The SCRAM users are written when storage is formatted: a plain node has none.
            raise ConfigurationError(
                f"{self.state_dir} holds a Kafka formatted without security",
                hint="`regsync stack down --purge` it, or use another REGSYNC_STACK__STATE_DIR for --secure",
            )
        found = kafka_secrets.ensure(self.state_dir)
        if fresh:
            self.report(
                f"kafka: generated a throwaway CA, node certificate and SCRAM users in {found.folder}"
            )
        return found

    def _apply_acls(self, endpoints: Endpoints) -> None:
        """The ACL table for the unprefixed topics (creating an existing ACL changes nothing)."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            **self.kafka_security(), bootstrap_servers=endpoints.bootstrap_servers, request_timeout_ms=30_000
        )
        try:
            count = kafka_acls.apply(admin, kafka_acls.grants())
        finally:
            admin.close()
        self.report(f"kafka: {count} ACLs applied (docs/operations.md, Kafka security)")

    # up ---------------------------------------------------------------------------------------
    def up(self) -> Endpoints:
        """Start whatever is not running; leave running services alone."""
        with self._lock():
            records = self._load()
            last_ports = self._last_ports()
            for name, rec in list(records.items()):
                if find(rec) is None:
                    self.report(f"{name}: recorded process {rec.pid} is gone; recovering")
                    del records[name]
            self._save(records, last_ports)
            for name, rec in records.items():
                self.report(f"{name}: already running (pid {rec.pid})")
            taken: set[int] = {p for r in records.values() for p in r.ports.values()}
            if self.settings.with_postgres and postgres_cluster.NAME not in records:
                rec = self._start_postgres(last_ports.get(postgres_cluster.NAME, {}), taken)
                records[rec.name] = rec
                last_ports[rec.name] = rec.ports
                self._save(records, last_ports)
            # The JVMs boot in parallel: most of their start is waiting, not computing. Kafka nodes of
            # a cluster must boot together anyway: a controller quorum needs a majority to elect.
            kafka_names = self.kafka_names(records)
            missing = [n for n in (*kafka_names, schema_registry.NAME) if n not in records]
            secure = self._prepare_secure(records)
            if missing:
                java = find_java(self.settings.java_home)
                plan = self._kafka_plan(kafka_names, records, last_ports, taken)
                with ThreadPoolExecutor(max_workers=len(missing)) as pool:
                    futures = {
                        n: pool.submit(
                            self._start_java_service,
                            n,
                            java,
                            last_ports.get(n, {}),
                            taken,
                            plan.get(n),
                            secure,
                        )
                        for n in missing
                    }
                    errors: list[BaseException] = []
                    for name, future in futures.items():
                        try:
                            rec = future.result()
                        except BaseException as exc:
                            errors.append(exc)
                            continue
                        records[name] = rec
                        last_ports[name] = rec.ports
                        self._save(records, last_ports)
                    if errors:
                        raise errors[0]
            endpoints = self._endpoints(records)
            if secure is not None and any(_is_kafka(n) for n in missing):
                self._apply_acls(endpoints)
            return endpoints

    def kafka_names(self, records: dict[str, ServiceRecord] | None = None) -> list[str]:
        """The Kafka nodes of this stack: as many as configured, and any a previous ``up`` recorded."""
        names = [kafka_broker.node_name(i) for i in range(1, self.settings.brokers + 1)]
        for name in sorted(records or self._load()):
            if _is_kafka(name) and name not in names:
                names.append(name)
        return names

    def _kafka_plan(
        self,
        names: list[str],
        records: dict[str, ServiceRecord],
        last_ports: dict[str, dict[str, int]],
        taken: set[int],
    ) -> dict[str, dict[str, Any]]:
        """Ports, node ids and the voter list of every Kafka node, fixed before any node starts."""
        ports: dict[str, dict[str, int]] = {}
        for name in names:
            if name in records:
                ports[name] = dict(records[name].ports)
            else:
                prev = last_ports.get(name, {})
                ports[name] = {
                    "broker": self._port(prev, "broker", taken),
                    "controller": self._port(prev, "controller", taken),
                }
        ids = {name: i for i, name in enumerate(names, start=1)}
        voters = ",".join(f"{ids[n]}@127.0.0.1:{ports[n]['controller']}" for n in names)
        cluster_id = (
            kafka_broker.existing_cluster_id(self.state_dir, len(names)) or kafka_broker.new_cluster_id()
        )
        return {
            n: {
                "ports": ports[n],
                "node_id": ids[n],
                "voters": voters,
                "nodes": len(names),
                "cluster_id": cluster_id,
            }
            for n in names
        }

    def _start_postgres(self, previous: dict[str, int], taken: set[int]) -> ServiceRecord:
        bins = find_postgres()
        for attempt in range(3):
            port = self._port(previous if attempt == 0 else {}, "port", taken)
            began = time.monotonic()
            self.report(f"postgres: starting on 127.0.0.1:{port}")
            try:
                rec = postgres_cluster.start(self.state_dir, bins, port, self.settings.start_timeout_s)
            except ServiceStartError as exc:
                if attempt == 2 or "could not bind" not in exc.log_tail:
                    raise
                continue
            self.timing.start[postgres_cluster.NAME] = time.monotonic() - began
            return rec
        raise AssertionError("unreachable")

    def _start_java_service(
        self,
        name: str,
        java: Any,
        previous: dict[str, int],
        taken: set[int],
        plan: dict[str, Any] | None = None,
        secure: kafka_secrets.KafkaSecrets | None = None,
    ) -> ServiceRecord:
        s = self.settings
        security = self.kafka_security() if secure is not None else {}
        if _is_kafka(name):
            fetched = kafka_libs(s.cache_dir, s.kafka_version, s.log4j_version, s.kafka_home)
        else:
            fetched = apicurio_app(s.cache_dir, s.apicurio_version)
        self.timing.fetch[name] = fetched.fetch_seconds
        if fetched.fetch_seconds:
            self.report(f"{name}: fetched once into {fetched.path} in {fetched.fetch_seconds:.1f}s")
        last_error: ServiceStartError | None = None
        for attempt in range(3):
            prev = previous if attempt == 0 else {}
            began = time.monotonic()
            if _is_kafka(name):
                assert plan is not None
                if attempt == 0 or plan["nodes"] > 1:
                    # A cluster's voter list names every node's port: a node cannot move alone.
                    broker, controller = plan["ports"]["broker"], plan["ports"]["controller"]
                else:
                    broker = self._port(prev, "broker", taken)
                    controller = self._port(prev, "controller", taken)
                    plan = {**plan, "voters": None}
                self.report(f"{name}: starting on 127.0.0.1:{broker}")
                rec = kafka_broker.start(
                    self.state_dir,
                    fetched.path,
                    java,
                    broker,
                    controller,
                    s.kafka_heap,
                    node_id=plan["node_id"],
                    voters=plan["voters"],
                    nodes=plan["nodes"],
                    cluster_id=plan["cluster_id"],
                    secure=secure,
                )
                waiter: Callable[[ServiceRecord, Any, float], float] = functools.partial(
                    kafka_broker.wait, security=security
                )
            else:
                port = self._port(prev, "http", taken)
                self.report(f"schema-registry: starting on 127.0.0.1:{port}")
                admin = schema_registry.admin_credentials(self.state_dir) if s.registry_auth else None
                rec = schema_registry.start(self.state_dir, fetched.path, java, port, s.registry_heap, admin)
                waiter = schema_registry.wait
            proc = psutil.Process(rec.pid)
            try:
                waiter(rec, proc, s.start_timeout_s)
            except ServiceStartError as exc:
                stop(rec)
                last_error = exc
                # A lost race for a port shows as a bind error: retry on fresh ports; else give up.
                bind = "Address already in use" in exc.log_tail or "BindException" in exc.log_tail
                if bind and not (plan is not None and plan["nodes"] > 1):
                    continue
                raise
            self.timing.start[name] = time.monotonic() - began
            self.report(f"{name}: ready in {self.timing.start[name]:.1f}s")
            return rec
        assert last_error is not None
        raise last_error

    def _endpoints(self, records: dict[str, ServiceRecord]) -> Endpoints:
        pg = records.get(postgres_cluster.NAME)
        nodes = [records[n] for n in self.kafka_names(records) if n in records]
        registry = records[schema_registry.NAME]
        secured = registry.extra.get("auth") == "basic"
        return Endpoints(
            bootstrap_servers=",".join(r.endpoints["bootstrap"] for r in nodes),
            registry_url=registry.endpoints["url"],
            database_url=pg.endpoints["url"] if pg else None,
            registry_auth=schema_registry.admin_credentials(self.state_dir) if secured else None,
            kafka_secrets_dir=str(self.state_dir / kafka_secrets.FOLDER) if self.secure else None,
        )

    def endpoints(self) -> Endpoints | None:
        """Endpoints of a running stack, or None when it is not (fully) up."""
        recorded = self._load()
        alive = {n for n, r in recorded.items() if find(r) is not None}
        if schema_registry.NAME not in alive or not any(_is_kafka(n) for n in alive):
            return None
        # Every recorded Kafka node stays in the bootstrap list: clients skip a node that is down.
        return self._endpoints({n: r for n, r in recorded.items() if n in alive or _is_kafka(n)})

    def order(self, records: dict[str, ServiceRecord] | None = None) -> list[str]:
        """Start order: PostgreSQL, the Kafka nodes, the registry (``down`` stops in reverse)."""
        return [postgres_cluster.NAME, *self.kafka_names(records), schema_registry.NAME]

    # down -------------------------------------------------------------------------------------
    def down(self, purge: bool = False) -> list[str]:
        """Stop exactly the processes ``up`` recorded, in reverse order; ``purge`` wipes the data."""
        stopped: list[str] = []
        with self._lock():
            records = self._load()
            last_ports = self._last_ports()
            names = self.order(records)
            for name in reversed(names):
                rec = records.get(name)
                if rec is None:
                    continue
                graceful = postgres_cluster.stop(rec) if name == postgres_cluster.NAME else False
                if stop(rec) or graceful:
                    stopped.append(name)
                    self.report(f"{name}: stopped (pid {rec.pid})")
                del records[name]
                self._save(records, last_ports)
            if purge:
                import shutil

                for name in names:
                    shutil.rmtree(self.state_dir / name, ignore_errors=True)
                shutil.rmtree(postgres_cluster.cluster_home(self.state_dir), ignore_errors=True)
                self.state_file.unlink(missing_ok=True)
        return stopped

    # status -----------------------------------------------------------------------------------
    def status(self) -> list[ServiceStatus]:
        """Each recorded service: alive, answering, where, and how much memory it holds."""
        out: list[ServiceStatus] = []
        records = self._load()
        for name in self.order(records):
            rec = records.get(name)
            if rec is None:
                out.append(ServiceStatus(name, False, False, None, {}, None, None))
                continue
            proc = find(rec)
            ready = False
            rss = None
            if proc is not None:
                with contextlib.suppress(psutil.Error):
                    # PostgreSQL serves from child processes: count the whole tree.
                    tree = [proc, *proc.children(recursive=True)]
                    rss = sum(p.memory_info().rss for p in tree) / 2**20
                with contextlib.suppress(Exception):
                    ready = _probe(name, rec, self.kafka_security() if _is_kafka(name) else {})
            out.append(ServiceStatus(name, proc is not None, ready, rec.pid, rec.endpoints, rss, rec.log))
        return out


def _probe(name: str, rec: ServiceRecord, security: dict[str, object]) -> bool:
    if _is_kafka(name):
        return kafka_broker.probe(rec.endpoints["bootstrap"], rec.extra.get("node_id"), security)
    if name == schema_registry.NAME:
        return schema_registry.probe(rec.endpoints["url"])
    return postgres_cluster.probe(rec.ports["port"])
