"""Apicurio Registry 3.x, serving the Confluent-compatible API at ``/apis/ccompat/v7``.

Storage is an H2 *file* database in the state folder, so schema ids survive a ``down``/``up`` just
as the Kafka records that reference them do.

With ``admin`` credentials, writes need HTTP basic authentication and reads stay anonymous. Apicurio
3.0's own authentication is OIDC (a Keycloak-like server we do not run here); its authentication
mechanism also delegates to Quarkus' HTTP basic auth when ``quarkus.http.auth.basic`` is on, against
Quarkus' embedded (properties) user store, which the app ships. The admin gets Apicurio's
``sr-admin`` role, role-based authorization is on and ``anonymous-read-access`` lets the health
bureaus' deserialisers and our own consumers look schemas up without credentials. The credentials
go into ``config/application.properties`` under the registry's working folder (mode 0600, read by
Quarkus at start), never onto the command line where ``ps`` would show them.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import httpx

from regsync.stack.prereq import Java
from regsync.stack.process import ServiceRecord, spawn, wait_ready

NAME = "schema-registry"
CCOMPAT = "/apis/ccompat/v7"

ADMIN_ROLE = "sr-admin"
ADMIN_USER = "regsync-admin"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SAFE_SECRET = re.compile(r"[A-Za-z0-9_.~-]{16,256}")


def auth_properties(username: str, password: str) -> str:
    """Quarkus/Apicurio properties: basic auth for writes by ``username``, anonymous reads.

    Names and passwords are kept to a URL-safe alphabet (what ``secrets.token_urlsafe`` makes):
    SmallRye Config expands ``${…}`` and ``java.util.Properties`` escapes, so anything wider would
    need two layers of escaping to arrive intact.
    """
    if not _SAFE_NAME.fullmatch(username):
        raise ValueError(f"registry user name {username!r}: ASCII letters, digits, - and _ only")
    if not _SAFE_SECRET.fullmatch(password):
        raise ValueError("registry password: 16+ characters of A-Z a-z 0-9 - _ . ~ only")
    return "\n".join(
        [
            "quarkus.http.auth.basic=true",
            "quarkus.security.users.embedded.enabled=true",
            "quarkus.security.users.embedded.plain-text=true",
            f"quarkus.security.users.embedded.users.{username}={password}",
            f"quarkus.security.users.embedded.roles.{username}={ADMIN_ROLE}",
            "apicurio.auth.role-based-authorization=true",
            "apicurio.auth.role-source=token",
            "apicurio.auth.anonymous-read-access.enabled=true",
            "",
        ]
    )


def admin_credentials(state_dir: Path) -> tuple[str, str]:
    """The local registry's admin (user, password): generated once into the state folder, mode 0600."""
    path = state_dir / NAME / "admin.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{ADMIN_USER}:{secrets.token_urlsafe(24)}\n")
    user, _, password = path.read_text(encoding="utf-8").strip().partition(":")
    return user, password


def start(
    state_dir: Path, app: Path, java: Java, port: int, heap: str, admin: tuple[str, str] | None = None
) -> ServiceRecord:
    """Launch the registry's runnable jar with a file-backed H2 store (writes authenticated with ``admin``)."""
    home = state_dir / NAME
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config" / "application.properties"
    if admin is not None:
        config.parent.mkdir(exist_ok=True)
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(auth_properties(*admin), encoding="utf-8")
    else:
        config.unlink(missing_ok=True)
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
    # Quarkus reads ./config/application.properties: run in the registry's own folder.
    proc = spawn(cmd, log, cwd=home)
    base = f"http://127.0.0.1:{port}"
    return ServiceRecord.of(
        proc,
        name=NAME,
        log=str(log),
        endpoints={"url": base + CCOMPAT, "ui_api": base + "/apis/registry/v3"},
        ports={"http": port},
        extra={"auth": "basic" if admin is not None else "none"},
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
