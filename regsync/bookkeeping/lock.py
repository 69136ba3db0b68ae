"""One running extract per source: a lock that dies with its holder.

Two extracts of one source at once publish everything twice (issue 13 item 2), so
:func:`regsync.stages.extract.run_extract` — behind the CLI, the DAGs and the demo alike — takes
this lock first. On PostgreSQL it is a session advisory lock on a connection held for the run; on a
SQLite file it is an ``flock`` on a file beside the database. Both are released by the operating
system or the server when the holder dies, even by SIGKILL, so a killed run never blocks the next
one. The ``extract_locks`` row only names the holder for the refusal message; it is not the lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from regsync.bookkeeping.tables import extract_locks
from schemas.errors import EXIT_TEMPFAIL, FatalError

__all__ = ["SourceBusyError", "source_lock"]


class SourceBusyError(FatalError):
    """Another extract of the same source is running; this one publishes nothing."""

    exit_code = EXIT_TEMPFAIL  # try again once the other run has finished
    default_hint = "wait for that run to finish (a killed run releases the lock at once)"


def _key(source: str) -> int:
    """A stable signed 64-bit advisory-lock key for the source."""
    digest = hashlib.sha256(f"regsync.extract:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _busy(engine: sa.Engine, source: str) -> SourceBusyError:
    with engine.connect() as conn:
        row = conn.execute(sa.select(extract_locks).where(extract_locks.c.source == source)).first()
    who = (
        f"run {row.run_id} ({row.holder}, since {row.acquired_at:%Y-%m-%d %H:%M:%S})"
        if row is not None
        else "another process"
    )
    return SourceBusyError(f"source {source!r} is already being extracted by {who}")


def _record(engine: sa.Engine, source: str, run_id: str) -> None:
    values = {"run_id": run_id, "holder": _holder(), "acquired_at": datetime.now(UTC)}
    with engine.begin() as conn:
        if not conn.execute(
            extract_locks.update().where(extract_locks.c.source == source).values(**values)
        ).rowcount:
            conn.execute(extract_locks.insert().values(source=source, **values))


@contextmanager
def source_lock(engine: sa.Engine, source: str, run_id: str) -> Iterator[None]:
    """Hold the source's extract lock for the block; raise :class:`SourceBusyError` at once if taken."""
    backend = engine.url.get_backend_name()
    if backend == "postgresql":
        with engine.connect() as held:
            if not held.execute(sa.select(sa.func.pg_try_advisory_lock(_key(source)))).scalar():
                raise _busy(engine, source)
            held.commit()
            try:
                _record(engine, source, run_id)
                yield
            finally:
                held.execute(sa.select(sa.func.pg_advisory_unlock(_key(source))))
                held.commit()
        return
    path = _lock_file(engine, source)
    if path is None:  # in-memory SQLite: one process only, nothing to share
        yield
        return
    with path.open("a+") as handle:
        if not _flock(handle):
            raise _busy(engine, source)
        _record(engine, source, run_id)
        yield


def _lock_file(engine: sa.Engine, source: str) -> Path | None:
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return None
    return Path(f"{database}.extract-{source}.lock")


def _flock(handle: IO[str]) -> bool:
    """A non-blocking exclusive lock, released when the file closes or the process dies."""
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
