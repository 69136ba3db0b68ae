"""Alembic environment of the pipeline's own tables (cursors, runs, replays, quality results).

Run programmatically by :func:`regsync.migrate.upgrade`, which hands over an open connection in
``config.attributes["connection"]``; a URL in ``sqlalchemy.url`` works too (offline SQL or ad-hoc CLI
use). These tables keep their own version table and only ever compare themselves, so the filing store
shares the database with its own migration history.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from regsync.migrate import VERSION_TABLE, include_object, target_metadata

config = context.config


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata(),
        version_table=VERSION_TABLE,
        include_object=include_object,
        compare_type=True,
        **kwargs,
    )


def run_offline() -> None:
    """Emit SQL for a URL without connecting (``alembic upgrade --sql``)."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: sa.Connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode rebuilds tables for future migrations.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the caller's connection, or one made from ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
