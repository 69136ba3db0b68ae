"""The extract lock on SQLite: an flock beside the database file, refused in one line while held."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from regsync.bookkeeping.lock import SourceBusyError, source_lock
from regsync.bookkeeping.migrate import ensure


def test_sqlite_file_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    ensure(engine)
    with source_lock(engine, "bianzhi", "extract-bianzhi-first"):
        with pytest.raises(SourceBusyError) as busy, source_lock(engine, "bianzhi", "extract-bianzhi-second"):
            pass
        assert (
            "'bianzhi' is already being extracted by run extract-bianzhi-first (pid " in busy.value.one_line()
        )
        with source_lock(engine, "jiaoyu", "extract-jiaoyu-1"):  # another source is not blocked
            pass
    with source_lock(engine, "bianzhi", "extract-bianzhi-third"):  # released on exit
        pass
    engine.dispose()
