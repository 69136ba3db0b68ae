"""Alembic environment of the portal's tables (version table ``alembic_version_portal``)."""

from __future__ import annotations

from alembic import context

from portal.db import VERSION_TABLE
from portal.models import metadata
from sink.store import include_object, run_migrations

run_migrations(context, metadata, VERSION_TABLE, include_object)
