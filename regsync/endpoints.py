"""Where the pipeline's services are: explicit settings first, else the running local stack.

The filing store and pipeline state fall back to an embedded SQLite file when no database is
configured and no local stack runs, so a user with nothing installed still gets a working store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from regsync.errors import ConfigurationError
from regsync.settings import Settings

if TYPE_CHECKING:
    from regsync.stack.launcher import Endpoints


@dataclass(frozen=True, slots=True)
class Services:
    """Resolved endpoints for one run."""

    bootstrap_servers: str
    registry_url: str
    database_url: str


def sqlite_default(settings: Settings) -> str:
    """The embedded default database beside the stack's state folder."""
    path = Path(settings.stack.state_dir).absolute().parent / "regsync.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def resolve(settings: Settings) -> Services:
    """Explicit settings win; missing ones come from ``regsync stack up``'s running stack."""
    from regsync.stack.launcher import Stack

    running = Stack(settings.stack).endpoints()
    bootstrap = settings.kafka_bootstrap or (running.bootstrap_servers if running else None)
    registry = settings.registry_url or (running.registry_url if running else None)
    if not bootstrap or not registry:
        raise ConfigurationError(
            "no Kafka / schema registry configured and no local stack running: "
            "run `regsync stack up` or set REGSYNC_KAFKA_BOOTSTRAP and REGSYNC_REGISTRY_URL"
        )
    return Services(bootstrap, registry, resolve_database(settings, running))


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
