"""Named PostgreSQL advisory locks: one monthly step of a month at a time, whoever started it.

Airflow's ``max_active_runs`` does not count backfill runs apart from scheduled ones, and a CLI run
knows nothing of Airflow, so "one at a time" is enforced here, in the database every step already
uses. A session-level ``pg_try_advisory_lock`` is held on a dedicated connection for the step's
duration and released when it ends or when the process dies (the server drops the session), so a
killed task never leaves a stale lock behind. Other dialects (SQLite in unit tests) get no lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from schemas.errors import RetriableError

__all__ = ["LockBusyError", "advisory_lock", "lock_key"]


class LockBusyError(RetriableError):
    """Another process holds the lock: the same step is running elsewhere; try again later."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is running elsewhere (advisory lock held)",
            hint="wait for the other run to finish; Airflow retries this task by itself",
        )
        self.name = name


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (what ``pg_advisory_lock(bigint)`` takes)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(database_url: str, name: str) -> Iterator[None]:
    """Hold the advisory lock ``name`` for the block, or raise :class:`LockBusyError` at once."""
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        if engine.dialect.name != "postgresql":
            yield
            return
        with engine.connect() as conn:
            key = lock_key(name)
            got = conn.scalar(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
            conn.commit()
            if not got:
                raise LockBusyError(name)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()
