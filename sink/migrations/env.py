"""Alembic environment of the filing store.

Run programmatically by :func:`sink.store.upgrade`, which hands over an open connection in
``config.attributes["connection"]``; a URL in ``sqlalchemy.url`` works too (offline SQL or ad-hoc CLI
use). The store keeps its own version table and only ever compares its own tables, so other parts of
the system may share the database with their own migration history.
"""

from __future__ import annotations

from alembic import context

from sink.models import metadata
from sink.store import VERSION_TABLE, include_object, run_migrations

run_migrations(context, metadata, VERSION_TABLE, include_object)
