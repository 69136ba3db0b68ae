"""The portal's migrations on PostgreSQL: both histories to head, models in step, idempotent."""

from __future__ import annotations

import sqlalchemy as sa

from portal.db import VERSION_TABLE, open_engine, schema_diff


def test_portal_migrations_on_postgres(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        open_engine(database_url).dispose()  # a second start changes nothing
        with engine.connect() as conn:
            assert schema_diff(conn) == []
            assert conn.scalar(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")) == "p0002"
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version_sink")) is not None
    finally:
        engine.dispose()
