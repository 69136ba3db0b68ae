"""Apicurio Registry 3.x, serving the Confluent-compatible API at ``/apis/ccompat/v7``.

Storage is an H2 *file* database in the state folder, so schema ids survive a ``down``/``up`` just
as the Kafka records that reference them do.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from regsync.stack.prereq import Java
from regsync.stack.process import ServiceRecord, spawn, wait_ready

NAME = "schema-registry"
CCOMPAT = "/apis/ccompat/v7"


def start(state_dir: Path, app: Path, java: Java, port: int, heap: str) -> ServiceRecord:
    """Launch the registry's runnable jar with a file-backed H2 store."""
    home = state_dir / NAME
    home.mkdir(parents=True, exist_ok=True)
    db = home / "h2" / "registry"
    cmd = [
        str(java.executable),
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.http.host=127.0.0.1",
        "-Dquarkus.log.level=INFO",
        "-Dapicurio.storage.kind=sql",
        "-Dapicurio.storage.sql.kind=h2",
        f"-Dapicurio.datasource.url=jdbc:h2:file:{db};DB_CLOSE_ON_EXIT=FALSE",
        "-Dapicurio.datasource.jdbc.initial-size=2",
        "-Dapicurio.datasource.jdbc.min-size=2",
        "-Dapicurio.datasource.jdbc.max-size=20",
        "-Dapicurio.rest.deletion.artifact.enabled=true",
        "-Dapicurio.rest.deletion.artifact-version.enabled=true",
        "-jar",
        str(app),
    ]
    log = home / "registry.log"
    proc = spawn(cmd, log, cwd=app.parent)
    base = f"http://127.0.0.1:{port}"
    return ServiceRecord(
        name=NAME,
        pid=proc.pid,
        create_time=proc.create_time(),
        log=str(log),
        endpoints={"url": base + CCOMPAT, "ui_api": base + "/apis/registry/v3"},
        ports={"http": port},
    )


def probe(ccompat_url: str) -> bool:
    """Ready when the Confluent-compatible API lists subjects."""
    response = httpx.get(f"{ccompat_url}/subjects", timeout=3.0)
    return response.status_code == 200


def wait(record: ServiceRecord, proc: object, timeout: float) -> float:
    """Block until the registry answers; returns seconds waited."""
    return wait_ready(
        NAME,
        lambda: probe(record.endpoints["url"]),
        proc=proc,
        log_path=Path(record.log),
        timeout=timeout,
    )
