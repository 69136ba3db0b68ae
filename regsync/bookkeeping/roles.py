"""PostgreSQL roles per component, with least privilege, applied after every migration.

One database holds three migration histories (the pipeline's tables, the filing store, the portal's
tables); the owner (the role that runs ``regsync db upgrade``) owns every table and alone may change
the schema. The components log in as their own roles:

* ``<prefix>pipeline`` — the pipeline's jobs (extract, gate, load, quality, report, export, DLQ):
  read and write the pipeline's bookkeeping, the quality results and the filing store; read filings;
  nothing of the portal's accounts, tokens or audit.
* ``<prefix>portal`` — the web service: reads what its pages show; writes only filings, its own
  accounts, tokens, login failures, receipts and seen-marks, and *appends* audit rows (no UPDATE or
  DELETE on ``portal_audit``, so its own role cannot rewrite history).
* ``<prefix>reader`` — reports, BI and roster readers: SELECT on the filing store and the pipeline's
  outcome tables, never on accounts, tokens, login failures or audit rows.

The grants are a table here, not ``ALTER DEFAULT PRIVILEGES``: a table nobody listed gets no grant
(fail closed), and ``tests/unit/test_db_roles.py`` fails when a model's table is missing from it.
Each run revokes and re-grants inside one transaction, so the table below is what the database holds.
Roles are cluster-wide: creation is guarded (``pg_roles``) and serialised by a transaction-scoped
advisory lock, so two ``db upgrade`` runs at once do not trip over each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from pydantic import SecretStr

from schemas.errors import ConfigurationError

__all__ = ["COMPONENTS", "GRANTS", "VERSION_TABLES", "AppliedRoles", "apply_roles", "role_names"]

COMPONENTS: Final = ("pipeline", "portal", "reader")

_READ: Final = ("SELECT",)
_WRITE: Final = ("SELECT", "INSERT", "UPDATE", "DELETE")
_APPEND: Final = ("SELECT", "INSERT")
_UPSERT: Final = ("SELECT", "INSERT", "UPDATE")

# Every table of the three histories -> component -> privileges. Absent component: no access at all.
GRANTS: Final[Mapping[str, Mapping[str, tuple[str, ...]]]] = {
    # the pipeline's bookkeeping (regsync/bookkeeping/tables.py)
    "connector_state": {"pipeline": _WRITE},
    "load_low_water": {"pipeline": _WRITE},  # where the next load scans from (issue 16)
    "extract_locks": {"pipeline": _WRITE},
    "extract_runs": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "gate_runs": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "dlq_replays": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "monthly_metrics": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    # Great Expectations results (quality/gx_results.py)
    "quality_runs": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "quality_results": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    # the filing store (sink/models.py)
    "institutions": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "institution_events": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "load_manifests": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "county_pushes": {"pipeline": _WRITE, "portal": _READ, "reader": _READ},
    "filings": {"pipeline": _READ, "portal": _UPSERT, "reader": _READ},
    # the portal's own tables (portal/models.py)
    "portal_users": {"portal": _WRITE},
    "portal_tokens": {"portal": _UPSERT},
    "portal_login_failures": {"portal": _WRITE},
    "portal_audit": {"portal": _APPEND},
    "portal_receipts": {"portal": _UPSERT},
    "portal_seen": {"portal": _UPSERT},
}

# Every role reads every version table: Alembic's ``upgrade head`` at start is then a read-only no-op.
VERSION_TABLES: Final = ("alembic_version_regsync", "alembic_version_sink", "alembic_version_portal")

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_LOCK_KEY: Final = 0x7265_6773_726F_6C65  # "regsrole": one role change at a time, cluster-wide


@dataclass(frozen=True, slots=True)
class AppliedRoles:
    """What :func:`apply_roles` did: the roles, which were new, and the tables granted."""

    roles: dict[str, str]
    created: tuple[str, ...]
    passwords_set: tuple[str, ...]
    tables: tuple[str, ...]


def role_names(prefix: str) -> dict[str, str]:
    """Component -> role name; the prefix must be a plain lower-case SQL identifier."""
    names = {component: f"{prefix}{component}" for component in COMPONENTS}
    for name in names.values():
        if not _IDENT.match(name):
            raise ConfigurationError(
                f"database role name {name!r} is not a plain identifier (a-z, 0-9, _)",
                hint="set REGSYNC_DB__ROLE_PREFIX to e.g. regsync_",
            )
    return names


def apply_roles(
    conn: sa.Connection, *, prefix: str, passwords: Mapping[str, SecretStr | None]
) -> AppliedRoles:
    """Create the roles if missing, set the given passwords, and grant exactly :data:`GRANTS`.

    Runs in the caller's transaction on PostgreSQL (the owner's connection). A password left unset
    keeps the role's current one (a new role without one cannot log in with a password at all).
    Passwords travel as SCRAM verifiers computed by libpq, so clear text never reaches the server's
    statement log.
    """
    if conn.dialect.name != "postgresql":
        raise ConfigurationError("database roles need PostgreSQL", hint="unset REGSYNC_DB__ROLES")
    names = role_names(prefix)
    quote = conn.dialect.identifier_preparer.quote
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    existing = set(
        conn.execute(
            sa.text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:n)"), {"n": list(names.values())}
        )
        .scalars()
        .all()
    )
    created, passwords_set = [], []
    database = quote(conn.execute(sa.text("SELECT current_database()")).scalar_one())
    for component, role in names.items():
        if role not in existing:
            # NOINHERIT and no CREATEDB/CREATEROLE: a component's role holds only what is granted below.
            conn.execute(sa.text(f"CREATE ROLE {quote(role)} LOGIN NOINHERIT"))
            created.append(role)
        secret = passwords.get(component)
        if secret is not None and secret.get_secret_value():
            verifier = _scram_verifier(conn, role, secret.get_secret_value())
            # exec_driver_sql: a verifier holds ':' that sa.text would read as bind parameters
            conn.exec_driver_sql(f"ALTER ROLE {quote(role)} PASSWORD '{verifier}'")
            passwords_set.append(role)
        conn.execute(sa.text(f"GRANT CONNECT ON DATABASE {database} TO {quote(role)}"))
        conn.execute(sa.text(f"GRANT USAGE ON SCHEMA public TO {quote(role)}"))
    # PostgreSQL < 15 lets PUBLIC create in schema public; nobody but the owner may change the schema.
    conn.execute(sa.text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    present = set(
        conn.execute(
            sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY(:t)"),
            {"t": [*GRANTS, *VERSION_TABLES]},
        )
        .scalars()
        .all()
    )
    granted = []
    all_roles = ", ".join(quote(r) for r in names.values())
    for table in sorted(present):
        conn.execute(sa.text(f"REVOKE ALL ON TABLE {quote(table)} FROM {all_roles}"))
        if table in VERSION_TABLES:
            conn.execute(sa.text(f"GRANT SELECT ON TABLE {quote(table)} TO {all_roles}"))
            continue
        for component, privileges in GRANTS[table].items():
            conn.execute(
                sa.text(f"GRANT {', '.join(privileges)} ON TABLE {quote(table)} TO {quote(names[component])}")
            )
        granted.append(table)
    # Sequences only hand out ids (``nextval``) for the tables a role may insert into.
    for table, sequence in conn.execute(
        sa.text(
            "SELECT c.relname, pg_get_serial_sequence(quote_ident(c.relname), a.attname) "
            "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped "
            "AND c.relname = ANY(:t) AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL"
        ),
        {"t": list(GRANTS)},
    ).all():
        writers = [names[c] for c, p in GRANTS.get(table, {}).items() if "INSERT" in p]
        conn.execute(sa.text(f"REVOKE ALL ON SEQUENCE {sequence} FROM {all_roles}"))
        if writers:
            conn.execute(
                sa.text(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {', '.join(map(quote, writers))}")
            )
    return AppliedRoles(names, tuple(created), tuple(passwords_set), tuple(granted))


def _scram_verifier(conn: sa.Connection, role: str, password: str) -> str:
    """A SCRAM-SHA-256 verifier made by libpq (``PQencryptPasswordConn``), as psql's password command does."""
    driver = conn.connection.dbapi_connection
    pgconn = getattr(driver, "pgconn", None)
    if pgconn is None:  # only psycopg 3 exposes libpq's encrypt_password
        raise ConfigurationError("setting role passwords needs the psycopg (3) driver: postgresql+psycopg://")
    verifier: bytes = pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    text = verifier.decode("ascii")
    if "'" in text:  # a verifier is base64 and '$'/':' only; never let anything else into the statement
        raise ConfigurationError("unexpected password verifier from libpq")
    return text
