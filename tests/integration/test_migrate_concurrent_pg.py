"""Two processes migrating one fresh database at once: one migrates, the other waits and finds head.

The pipelined bench's extract and gate children, started together on a new database, failed on
``duplicate key … alembic_version_regsync``: each created the version table.
"""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from regsync.bookkeeping import migrate
from sink import store


def _waiting_on_advisory_lock(conn: sa.Connection, database: str) -> int:
    """Backends of ``database`` blocked on an advisory lock right now."""
    return conn.execute(
        sa.text(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = :db"
        ),
        {"db": database},
    ).scalar_one()


def test_concurrent_upgrades_wait_for_each_other(database_url):
    database = database_url.rsplit("/", 1)[1]
    holder = sa.create_engine(database_url)
    watcher = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    errors: list[BaseException] = []

    def migrate_both() -> None:
        try:
            store.upgrade(database_url)
            migrate.upgrade(database_url)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate_both) for _ in range(2)]
    try:
        with holder.begin() as held, watcher.connect() as watch:
            # Hold the lock the migrations take: both must queue behind it, not race past it.
            held.execute(sa.select(sa.func.pg_advisory_xact_lock(store.MIGRATION_LOCK_KEY)))
            for t in threads:
                t.start()
            deadline = time.monotonic() + 60
            while _waiting_on_advisory_lock(watch, database) < 2:
                assert all(t.is_alive() for t in threads), errors  # a migration ran past the lock
                assert time.monotonic() < deadline, "the migrations never queued on the lock"
                time.sleep(0.02)  # a poll of the lock table, not a wait for the outcome
            assert not sa.inspect(watch).has_table(migrate.VERSION_TABLE)
        for t in threads:
            t.join(120)
        assert not errors, errors
        with watcher.connect() as conn:
            versions = {
                table: conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalars().all()
                for table in (store.VERSION_TABLE, migrate.VERSION_TABLE)
            }
            assert all(len(v) == 1 for v in versions.values()), versions
            assert store.schema_diff(conn) == []
            assert migrate.schema_diff(conn) == []
    finally:
        holder.dispose()
        watcher.dispose()
