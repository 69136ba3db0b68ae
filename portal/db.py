"""Opening the portal's database: the filing store plus the portal's own Alembic history.

The portal reads the sink's tables and owns six of its own; both histories are brought to head at
start (``sink.store.upgrade`` with each script location), each in its own version table.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sink import store

VERSION_TABLE = "alembic_version_portal"
MIGRATIONS = Path(__file__).with_name("migrations")


def database_url(explicit: str | None = None) -> str:
    """The database: an explicit URL, the portal's setting, else the pipeline's resolution."""
    if explicit:
        return explicit
    from portal.settings import get_portal_settings

    configured = get_portal_settings().database_url
    if configured is not None:
        return configured.get_secret_value()
    from regsync.endpoints import resolve_database
    from regsync.settings import get_settings

    return resolve_database(get_settings())


def open_engine(url: str) -> sa.Engine:
    """An engine on ``url`` with both migration histories at head (idempotent)."""
    engine = store.create_engine(url)
    upgrade(engine)
    return engine


def upgrade(engine: sa.Engine) -> None:
    """The filing store first (the portal's index is on one of its tables), then the portal's tables.

    At head this only reads the version tables, so the portal's own role (no DDL) passes; behind
    head, that role is refused, and the error says who must migrate.
    """
    try:
        store.upgrade(engine)
        store.upgrade(engine, "head", MIGRATIONS)
    except sa.exc.ProgrammingError as exc:
        if "permission denied" not in str(exc.orig) and "must be owner" not in str(exc.orig):
            raise
        from schemas.errors import ConfigurationError

        raise ConfigurationError(
            f"the portal's database role may not migrate the schema ({type(exc.orig).__name__})",
            hint="run `regsync db upgrade` as the database owner (REGSYNC_DATABASE_URL) first",
        ) from exc


def schema_diff(conn: sa.Connection) -> list[object]:
    """Differences between the database and the portal's models; empty when in step."""
    from portal.models import metadata

    return store.schema_diff(conn, metadata, VERSION_TABLE)
