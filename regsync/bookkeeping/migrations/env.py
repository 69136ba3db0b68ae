"""Alembic environment of the pipeline's own tables (cursors, runs, replays, quality results).

Run programmatically by :func:`regsync.bookkeeping.migrate.upgrade`, which hands over an open connection in
``config.attributes["connection"]``; a URL in ``sqlalchemy.url`` works too. These tables keep their
own version table and only ever compare themselves, so the filing store shares the database with its
own migration history.
"""

from __future__ import annotations

from alembic import context

from regsync.bookkeeping.migrate import VERSION_TABLE, include_object, target_metadata
from sink.store import run_migrations

run_migrations(context, target_metadata(), VERSION_TABLE, include_object)
