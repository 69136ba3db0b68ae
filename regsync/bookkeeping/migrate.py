"""Schema migrations of the pipeline's own tables, beside the filing store's.

The same database holds the filing store (``sink``, history in ``alembic_version_sink``) and the
pipeline's bookkeeping (every table in :mod:`regsync.bookkeeping.tables`) and the Great
Expectations results (:mod:`quality.gx_results`). Those tables are owned here, by
Alembic with its own version table, so a long-lived deployment is upgraded in place rather than
left to ``create_all`` (which never alters a table that already exists).

``quality`` must not import ``regsync`` (docs/architecture.md's layers), so its tables' migrations live here,
where the layers are wired.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.config import Config

from sink import store
from sink.store import include_object  # the same rule: compare only the tables this history models

__all__ = [
    "VERSION_TABLE",
    "alembic_config",
    "ensure",
    "include_object",
    "schema_diff",
    "target_metadata",
    "upgrade",
]

VERSION_TABLE = "alembic_version_regsync"
MIGRATIONS = Path(__file__).with_name("migrations")

_done: set[str] = set()
_lock = threading.Lock()


def target_metadata() -> list[sa.MetaData]:
    """The models these migrations must match (imported late: each module pulls in its own deps)."""
    from quality import gx_results
    from regsync.bookkeeping import tables

    return [tables.metadata, gx_results.metadata]


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config for these migrations (the connection travels as in :mod:`sink.store`)."""
    return store.alembic_config(connection, MIGRATIONS)


def upgrade(url: str | sa.URL | sa.Engine, revision: str = "head") -> None:
    """``alembic upgrade head`` for the pipeline's tables, in one transaction."""
    store.upgrade(url, revision, MIGRATIONS)


def ensure(engine: sa.Engine) -> None:
    """Upgrade once per database and process: callers on hot paths need not pay Alembic each time."""
    url = engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    key = url.render_as_string(hide_password=False)
    if not in_memory and key in _done:
        return
    with _lock:
        if not in_memory and key in _done:
            return
        upgrade(engine)
        if not in_memory:  # each in-memory SQLite engine is a new, empty database
            _done.add(key)


def schema_diff(conn: sa.Connection) -> list[Any]:
    """Differences between the database and these tables' models; empty when in step."""
    return store.schema_diff(conn, target_metadata(), VERSION_TABLE)
