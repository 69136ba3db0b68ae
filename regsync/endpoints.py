"""Where the pipeline's services are: explicit settings first, else the running local stack.

The filing store and pipeline state fall back to an embedded SQLite file when no database is
configured and no local stack runs, so a user with nothing installed still gets a working store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from regsync.settings import Settings
from schemas.errors import ConfigurationError, ServiceUnavailableError

if TYPE_CHECKING:
    from regsync.stack.launcher import Endpoints


@dataclass(frozen=True, slots=True)
class Services:
    """Resolved endpoints for one run."""

    bootstrap_servers: str
    registry_url: str
    database_url: str
    # only registering needs it (reads are anonymous); kept out of the repr
    registry_auth: tuple[str, str] | None = field(default=None, repr=False)


def sqlite_default(settings: Settings) -> str:
    """The embedded default database beside the stack's state folder."""
    path = Path(settings.stack.state_dir).absolute().parent / "regsync.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def resolve(
    settings: Settings, *, probe: bool = True, need: tuple[str, ...] = ("kafka", "registry", "database")
) -> Services:
    """Explicit settings win; missing ones come from ``regsync stack up``'s running stack.

    With ``probe`` (the default) each service must answer within ``settings.probe_timeout`` seconds,
    so a closed port is one clear line in seconds, not a client library's half-minute retry loop.
    """
    from regsync.stack.launcher import Stack

    running = Stack(settings.stack).endpoints()
    bootstrap = settings.kafka_bootstrap or (running.bootstrap_servers if running else None)
    registry = settings.registry_url or (running.registry_url if running else None)
    if not bootstrap or not registry:
        raise ConfigurationError(
            "no Kafka / schema registry configured and no local stack running: "
            "run `regsync stack up` or set REGSYNC_KAFKA_BOOTSTRAP and REGSYNC_REGISTRY_URL"
        )
    if (
        running is not None
        and running.kafka_secrets_dir is not None
        and not settings.kafka_bootstrap
        and settings.kafka.security_protocol == "PLAINTEXT"
    ):
        # A plaintext client on the SASL_SSL listener would only time out after half a minute.
        raise ConfigurationError(
            "the local stack runs Kafka with SASL_SSL but REGSYNC_KAFKA__SECURITY_PROTOCOL is PLAINTEXT",
            hint=f"`set -a; . {running.kafka_secrets_dir}/client.env; set +a` logs each component in",
        )
    auth = settings.registry_auth() or (running.registry_auth if running else None)
    services = Services(bootstrap, registry, pipeline_database(settings, running), auth)
    if probe:
        probe_services(services, timeout=settings.probe_timeout, need=need)
    return services


def probe_services(
    services: Services, *, timeout: float = 5.0, need: tuple[str, ...] = ("kafka", "registry", "database")
) -> None:
    """Raise :class:`ServiceUnavailableError` naming the first needed service that does not answer."""
    if "kafka" in need:
        probe_kafka(services.bootstrap_servers, timeout)
    if "registry" in need:
        probe_registry(services.registry_url, timeout)
    if "database" in need:
        probe_database(services.database_url, timeout)


def probe_kafka(bootstrap: str, timeout: float) -> None:
    """A TCP connection to any one bootstrap server (the client finds the rest from it)."""
    import socket

    reasons = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout):
                return
        except (OSError, ValueError) as exc:
            reasons.append(f"{server}: {exc}")
    raise ServiceUnavailableError(
        "Kafka",
        bootstrap,
        "; ".join(reasons) or "no bootstrap server",
        hint=_HINT.format(var="REGSYNC_KAFKA_BOOTSTRAP"),
    )


def probe_registry(url: str, timeout: float) -> None:
    """Any HTTP answer below 500 from the registry's subject list counts as up."""
    import httpx

    try:
        answer = httpx.get(url.rstrip("/") + "/subjects", timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            "the schema registry", url, type(exc).__name__, hint=_HINT.format(var="REGSYNC_REGISTRY_URL")
        ) from exc
    if answer.status_code >= 500:
        raise ServiceUnavailableError(
            "the schema registry",
            url,
            f"HTTP {answer.status_code}",
            hint=_HINT.format(var="REGSYNC_REGISTRY_URL"),
        )


def probe_database(url: str, timeout: float) -> None:
    """Open and close one connection (SQLite files need no probe: they are created on first use)."""
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    connect_args = (
        {"connect_timeout": max(1, int(timeout))} if parsed.get_backend_name() == "postgresql" else {}
    )
    engine = sa.create_engine(parsed, connect_args=connect_args, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as exc:
        from regsync.failures import classify

        translated = classify(exc)
        if translated is not None and not isinstance(translated, ServiceUnavailableError):
            raise translated from exc
        raise ServiceUnavailableError(
            "the database",
            parsed.render_as_string(hide_password=True),
            str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__,
            hint=_HINT.format(var="REGSYNC_DATABASE_URL"),
        ) from exc
    finally:
        engine.dispose()


_HINT = "is it running? `regsync stack status` shows the local stack; {var} names another"


def pipeline_database(settings: Settings, running: Endpoints | None = None) -> str:
    """Where the jobs connect: the pipeline role's URL when set, else the owner's (quick local work)."""
    if settings.db.pipeline_url is not None:
        return settings.db.pipeline_url.get_secret_value()
    return resolve_database(settings, running)


def resolve_database(settings: Settings, running: Endpoints | None = None) -> str:
    """The database alone (no broker needed): configured URL, else the local stack's, else SQLite.

    ``running`` is the stack :func:`resolve` already looked up; without it, the stack is asked here.
    """
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    if running is None:
        from regsync.stack.launcher import Stack

        running = Stack(settings.stack).endpoints()
    return (running.database_url if running is not None else None) or sqlite_default(settings)
