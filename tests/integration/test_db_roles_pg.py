"""Least-privilege database roles on the real PostgreSQL: what each role may not do, and that the
pipeline's stages still run under theirs (extract, gate and load through real Kafka).

Roles are cluster-wide, so each test names them with its uid and drops them afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from listsource import ListConnector, rows
from pydantic import SecretStr

from portal.cli import upgrade_database as upgrade_portal
from regsync.bookkeeping import migrate
from regsync.bookkeeping.roles import apply_roles
from regsync.jobs import migrate_database
from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stages.extract import run_extract
from regsync.stages.gate import run_gate
from regsync.stages.load import run_load

DENIED = ("permission denied", "must be owner")


def _as(url: str, role: str) -> str:
    """The same database, logged in as ``role`` (the local cluster trusts loopback logins)."""
    return sa.make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.fixture
def roles(database_url: str, uid: str) -> Iterator[dict[str, str]]:
    """The database migrated by its owner, then the component roles made and granted; role -> URL."""
    migrate_database(database_url)
    upgrade_portal(database_url)
    owner = sa.create_engine(database_url)
    prefix = f"t{uid}_"
    with owner.begin() as conn:
        applied = apply_roles(conn, prefix=prefix, passwords={"portal": SecretStr("s3cret-'quote")})
    assert applied.created == tuple(applied.roles.values())
    assert applied.passwords_set == (f"{prefix}portal",)
    yield {component: _as(database_url, role) for component, role in applied.roles.items()}
    names = ", ".join(f'"{r}"' for r in applied.roles.values())
    with owner.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {names}"))
        conn.execute(sa.text(f"DROP ROLE {names}"))
    owner.dispose()


def _refused(url: str, statement: str) -> str:
    """Run one statement as the URL's role; it must be refused for lack of privilege, nothing else."""
    engine = sa.create_engine(url)
    try:
        with pytest.raises(sa.exc.ProgrammingError) as caught, engine.begin() as conn:
            conn.execute(sa.text(statement))
        message = str(caught.value.orig)
        assert any(d in message for d in DENIED), f"{statement}: {message}"
        return message
    finally:
        engine.dispose()


def _allowed(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_each_role_is_refused_what_it_must_not_do(roles: dict[str, str]) -> None:
    portal, reader, pipeline = roles["portal"], roles["reader"], roles["pipeline"]
    # the web service: never rewrites the event history, the roster or its own audit trail
    _refused(portal, "UPDATE institution_events SET event_type = 'x'")
    _refused(portal, "DELETE FROM institutions")
    _refused(portal, "UPDATE portal_audit SET action = 'x'")
    _refused(portal, "DELETE FROM portal_audit")
    _refused(portal, "CREATE TABLE sneaky (x int)")
    _allowed(portal, "SELECT count(*) FROM institution_events")
    _refused(portal, "DELETE FROM filings")
    # reports and roster readers: read the store, write nothing, never see accounts or audit rows
    for statement in (
        "INSERT INTO monthly_metrics (month) VALUES ('2026-01')",
        "UPDATE institutions SET name = 'x'",
        "DELETE FROM filings",
        "SELECT * FROM portal_users",
        "SELECT * FROM portal_tokens",
        "SELECT * FROM portal_audit",
        "CREATE TABLE sneaky (x int)",
    ):
        _refused(reader, statement)
    _allowed(reader, "SELECT count(*) FROM institutions JOIN filings USING (uscc)")
    # the loader: the filing store and its bookkeeping, nothing of the portal's, no DDL
    for statement in (
        "SELECT * FROM portal_users",
        "INSERT INTO portal_audit (at, action) VALUES (now(), 'forged')",
        "UPDATE filings SET status = 'x'",
        "DROP TABLE institution_events",
        "CREATE TABLE sneaky (x int)",
    ):
        _refused(pipeline, statement)


def test_applying_twice_changes_nothing_and_only_listed_tables_are_granted(
    database_url: str, roles: dict[str, str], uid: str
) -> None:
    owner = sa.create_engine(database_url)
    try:
        with owner.begin() as conn:
            conn.execute(sa.text("CREATE TABLE unlisted (x int)"))
            again = apply_roles(conn, prefix=f"t{uid}_", passwords={})
        assert again.created == ()
        assert "unlisted" not in again.tables
        with owner.connect() as conn:
            grants = conn.execute(
                sa.text(
                    "SELECT grantee, table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee LIKE :p ORDER BY 1, 2, 3"
                ),
                {"p": f"t{uid}_%"},
            ).all()
        assert not [g for g in grants if g.table_name == "unlisted"]
        assert ("t" + uid + "_portal", "portal_audit", "UPDATE") not in [tuple(g) for g in grants]
        _refused(roles["pipeline"], "SELECT * FROM unlisted")
    finally:
        owner.dispose()


def test_the_pipeline_runs_under_its_role(stack, uid: str, roles: dict[str, str]) -> None:
    """Extract, gate and load (bookkeeping, locks, the filing store) with the pipeline role's URL."""
    topics = Topics(prefix=f"t{uid}.")
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    p = {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": roles["pipeline"],
        "topics": topics,
    }
    engine = sa.create_engine(roles["pipeline"])
    migrate.upgrade(engine)  # at head: Alembic only reads its version table, no DDL needed
    engine.dispose()
    run_extract(ListConnector(rows(12)), as_of=datetime(2026, 1, 20, tzinfo=UTC), batch_size=5, **p)
    run_gate(**p, until_idle=True)
    loaded = run_load(**p, month="2026-01", as_of=datetime(2026, 2, 2, tzinfo=UTC))
    assert loaded.records == 12
    again = run_load(**p, month="2026-01", as_of=datetime(2026, 2, 2, tzinfo=UTC))
    assert again.noop


def test_a_role_behind_head_is_told_who_must_migrate(database_url: str, uid: str) -> None:
    """The portal started on a database its role cannot migrate: one clear line, exit 78."""
    from portal.db import open_engine
    from schemas.errors import ConfigurationError

    owner = sa.create_engine(database_url)
    prefix = f"t{uid}_"
    with owner.begin() as conn:  # roles on an empty database: nothing migrated yet
        applied = apply_roles(conn, prefix=prefix, passwords={})
    try:
        with pytest.raises(ConfigurationError, match="may not migrate") as refused:
            open_engine(_as(database_url, applied.roles["portal"]))
        assert "regsync db upgrade" in (refused.value.hint or "")
    finally:
        names = ", ".join(f'"{r}"' for r in applied.roles.values())
        with owner.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {names}"))
            conn.execute(sa.text(f"DROP ROLE {names}"))
        owner.dispose()


def test_two_upgrades_at_once_both_succeed(database_url: str, uid: str) -> None:
    """Roles are cluster-wide: concurrent runs are serialised by the advisory lock, not racing."""
    from concurrent.futures import ThreadPoolExecutor

    migrate_database(database_url)
    prefix = f"t{uid}_"
    engine = sa.create_engine(database_url, pool_size=4)

    def run(_: int):
        with engine.begin() as conn:
            return apply_roles(conn, prefix=prefix, passwords={"reader": SecretStr(f"pw-{uid}")})

    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(run, range(4)))
        assert sum(len(r.created) for r in results) == 3  # each role made exactly once
        assert all(r.tables == results[0].tables for r in results)
    finally:
        names = ", ".join(f'"{prefix}{c}"' for c in ("pipeline", "portal", "reader"))
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {names}"))
            conn.execute(sa.text(f"DROP ROLE {names}"))
        engine.dispose()


def test_db_upgrade_migrates_the_portal_and_grants_the_roles(database_url, uid, tmp_path, monkeypatch):
    """The deployment step end to end: `regsync db upgrade` with roles on, twice; no secret printed."""
    from typer.testing import CliRunner

    from regsync.cli import app
    from regsync.settings import get_settings

    prefix = f"t{uid}_"
    monkeypatch.setenv("REGSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("REGSYNC_STACK__STATE_DIR", str(tmp_path / "no-local-stack"))
    monkeypatch.setenv("REGSYNC_DB__ROLES", "true")
    monkeypatch.setenv("REGSYNC_DB__ROLE_PREFIX", prefix)
    monkeypatch.setenv("REGSYNC_DB__READER_PASSWORD", f"reader-secret-{uid}")
    get_settings.cache_clear()
    try:
        first = CliRunner().invoke(app, ["db", "upgrade"])
        again = CliRunner().invoke(app, ["db", "upgrade"])
    finally:
        get_settings.cache_clear()
        owner = sa.create_engine(database_url)
        names = ", ".join(f'"{prefix}{c}"' for c in ("pipeline", "portal", "reader"))
        with owner.begin() as conn:
            if conn.scalar(
                sa.text("SELECT count(*) FROM pg_roles WHERE rolname LIKE :p"), {"p": f"{prefix}%"}
            ):
                conn.execute(sa.text(f"DROP OWNED BY {names}"))
                conn.execute(sa.text(f"DROP ROLE {names}"))
        owner.dispose()
    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "portal    at revision p0002" in first.output
    assert f"role {prefix}reader" in first.output
    assert "created, password set" in first.output
    assert "exists, password set" in again.output
    from regsync.bookkeeping.roles import GRANTS

    assert f"grants    {len(GRANTS)} tables" in again.output
    assert f"reader-secret-{uid}" not in first.output + again.output
