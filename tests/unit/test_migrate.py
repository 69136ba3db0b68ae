"""The pipeline's own tables are owned by Alembic, beside (not inside) the filing store's history."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from regsync.bookkeeping import migrate
from sink import store

PIPELINE_TABLES = {
    "connector_state",
    "extract_locks",
    "extract_runs",
    "gate_runs",
    "load_low_water",
    "dlq_replays",
    "monthly_metrics",
    "quality_runs",
    "quality_results",
}


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _revision(engine: sa.Engine, table: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalar_one()


def test_upgrade_creates_the_tables_the_models_describe(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate.upgrade(engine)
    assert _tables(engine) == PIPELINE_TABLES | {migrate.VERSION_TABLE}
    assert _revision(engine, migrate.VERSION_TABLE) == "0003"
    with engine.connect() as conn:
        assert migrate.schema_diff(conn) == []
    migrate.upgrade(engine)  # at head already: no error, nothing changes
    assert _tables(engine) == PIPELINE_TABLES | {migrate.VERSION_TABLE}


def test_both_histories_share_one_database_without_touching_each_other(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'both.db'}")
    migrate.upgrade(engine)
    store.upgrade(engine)
    with engine.connect() as conn:
        assert migrate.schema_diff(conn) == []
        assert store.schema_diff(conn) == []
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
    left = _tables(engine)
    assert not left & PIPELINE_TABLES
    assert {"institutions", "institution_events", store.VERSION_TABLE} <= left
    assert _revision(engine, store.VERSION_TABLE) == "0002"


def test_a_database_an_earlier_build_made_with_create_all_is_adopted(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    for metadata in migrate.target_metadata():
        metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO gate_runs (run_id, started_at, status, consumed, valid, rejected, "
                "by_rule_json) VALUES ('kept', '2026-01-01', 'succeeded', 1, 1, 0, '{}')"
            )
        )
    migrate.upgrade(engine)
    assert _revision(engine, migrate.VERSION_TABLE) == "0003"
    with engine.connect() as conn:
        assert migrate.schema_diff(conn) == []
        assert conn.execute(sa.text("SELECT run_id FROM gate_runs")).scalar_one() == "kept"


def test_ensure_migrates_each_database_once_per_process(tmp_path, monkeypatch):
    calls: list[str] = []
    real = migrate.upgrade
    monkeypatch.setattr(migrate, "upgrade", lambda e, revision="head": (calls.append(str(e.url)), real(e))[1])
    monkeypatch.setattr(migrate, "_done", set())
    first = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    again = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    other = sa.create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    for engine in (first, again, other):
        migrate.ensure(engine)
    assert len(calls) == 2
    memory = sa.create_engine("sqlite://")
    migrate.ensure(memory)
    migrate.ensure(memory)  # an in-memory database is never assumed migrated
    assert len(calls) == 4
    assert _tables(other) >= PIPELINE_TABLES
