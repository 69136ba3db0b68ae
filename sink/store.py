"""Opening the filing store: engines, schema migrations, and the dialect-aware bulk insert and upsert.

The schema is owned by Alembic (``sink/migrations``), never by ``metadata.create_all``: a health
bureau's store lives for years and must be upgraded in place. The sink keeps its own version table
(``alembic_version_sink``) so the pipeline's state tables, or anything else sharing the database,
can keep their own migration history beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "VERSION_TABLE",
    "alembic_config",
    "column_types",
    "copies",
    "copy_rows",
    "create_engine",
    "include_object",
    "insert_rows",
    "run_migrations",
    "schema_diff",
    "upgrade",
    "upsert",
    "upsert_rows",
]

VERSION_TABLE = "alembic_version_sink"
MIGRATIONS = Path(__file__).with_name("migrations")


def create_engine(url: str | sa.URL, **kwargs: Any) -> sa.Engine:
    """An engine suited to the store: stored JSON keeps Chinese text as is (not escaped).

    Any engine works with the sink; this one only makes the stored JSON smaller and greppable.
    """
    kwargs.setdefault("json_serializer", partial(json.dumps, ensure_ascii=False, separators=(",", ":")))
    return sa.create_engine(url, **kwargs)


def alembic_config(connection: sa.Connection | None = None, location: Path = MIGRATIONS) -> Config:
    """An Alembic config built in code (no ``alembic.ini``), pointing into this package by default.

    Passing the connection through ``attributes`` rather than a URL in the config avoids
    ConfigParser's ``%`` interpolation mangling passwords, and lets tests migrate a database they
    already hold open. Alembic is imported here, not with the module: the load's reading process
    imports this module and migrates nothing (0.2 s of its start).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


#: The advisory lock every migration of this database takes (each history, one at a time): "regsmigr".
MIGRATION_LOCK_KEY = 0x7265_6773_6D69_6772


def upgrade(url: str | sa.URL | sa.Engine, revision: str = "head", location: Path = MIGRATIONS) -> None:
    """Bring the store's schema (or the history at ``location``) to ``revision``, in one transaction."""
    from alembic import command

    engine = url if isinstance(url, sa.Engine) else create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Processes that start together on a fresh database (a DAG's first tasks, the
                # pipelined bench's children) would each create the version table and all but one
                # fail on it: one migrates, the others wait here, then find the schema at head.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
            command.upgrade(alembic_config(conn, location), revision)
    finally:
        if engine is not url:
            engine.dispose()


def run_migrations(context: Any, target_metadata: Any, version_table: str, include: Any) -> None:
    """The body of an Alembic ``env.py``: offline SQL, the caller's connection, or a URL.

    Shared by this store's environment and the pipeline's (``regsync/bookkeeping/migrations``), which differ
    only in their models and version table.
    """
    config = context.config

    def configure(**kwargs: Any) -> None:
        context.configure(
            target_metadata=target_metadata,
            version_table=version_table,
            include_object=include,
            compare_type=True,
            **kwargs,
        )

    def run(connection: sa.Connection) -> None:
        # SQLite cannot ALTER most things in place: batch mode rebuilds tables for future migrations.
        configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():  # ``alembic upgrade --sql``: emit SQL for a URL without connecting
        configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        run(conn)
    engine.dispose()


# Indexes another history keeps on the store's tables (the portal's inbox index on
# institution_events): named with this prefix, they are that history's, not a drift of the store's.
FOREIGN_INDEX_PREFIX = "ix_portal_"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate compares only the sink's tables: a table the models lack is someone else's.

    So is an index named ``ix_portal_…`` on one of them: ``regsync db upgrade`` migrates the portal
    too, and the store's own diff must not ask to drop it.
    """
    if (
        type_ == "index"
        and reflected
        and compare_to is None
        and (name or "").startswith(FOREIGN_INDEX_PREFIX)
    ):
        return False
    return not (type_ == "table" and reflected and compare_to is None)


def schema_diff(conn: sa.Connection, metadata: Any = None, version_table: str = VERSION_TABLE) -> list[Any]:
    """Differences between the database and the models, as Alembic autogenerate sees them.

    Empty after ``upgrade`` when the migrations match the models; the tests check exactly that.
    ``metadata`` (one ``MetaData`` or a list) and ``version_table`` default to the store's.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    if metadata is None:
        from sink.models import metadata
    opts = {
        "compare_type": True,
        "version_table": version_table,
        "include_object": include_object,
        "target_metadata": metadata,
    }
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), metadata))


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Iterable[str],
) -> None:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` every other column.

    PostgreSQL and SQLite share the syntax; each needs its own dialect construct. Rows are complete
    (the caller computed the new state), so the update simply takes the excluded values. On
    PostgreSQL (psycopg, complete rows) the rows are ``COPY``'d into a temporary staging table and
    merged by one set-based ``INSERT … SELECT … ON CONFLICT``: an executemany spent most of its time
    in per-row parameter handling (SQLAlchemy's and the driver's), about a seventh of the load's CPU.
    Keys must be unique within ``rows`` (PostgreSQL refuses to update one row twice in a statement).
    """
    if not rows:
        return
    key = tuple(key)
    if _copy_driver(conn, table, rows) is not None:
        _upsert_staged(conn, table, rows, key)
        return
    dialect = conn.dialect.name
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported stores
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=update), list(rows))


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT`` complete rows: one ``COPY … FROM STDIN`` on PostgreSQL, one executemany elsewhere.

    On PostgreSQL an executemany still runs one statement per row; COPY streams them all in the same
    transaction, several times cheaper for the server and the driver. The values pass through the same
    SQLAlchemy bind processors and psycopg dumpers as the INSERT would (JSON documents go in through
    the engine's ``json_serializer``), and a failure is raised as the same SQLAlchemy exception class
    (a duplicate key is an :class:`sqlalchemy.exc.IntegrityError` either way). Rows must carry every
    column of ``table`` (no defaults are filled in); otherwise the plain INSERT is used.
    """
    if not rows:
        return
    driver = _copy_driver(conn, table, rows)
    if driver is None:
        conn.execute(table.insert(), list(rows))  # SQLite, another PostgreSQL driver, partial rows
        return
    names = list(rows[0])
    target = conn.dialect.identifier_preparer.format_table(table)
    _copy_into(conn, driver, target, names, _processed(conn, table, names, rows))


def _copy_driver(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> Any | None:
    """The psycopg connection under ``conn`` when ``rows`` can be COPY'd into ``table``, else None."""
    if set(rows[0]) != set(table.columns.keys()):
        return None
    return _psycopg(conn)


def copy_rows(
    conn: sa.Connection,
    table: sa.Table,
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    types: Sequence[int] | None = None,
) -> bool:
    """``COPY table (names) FROM STDIN`` rows already in the driver's types; False when not PostgreSQL/psycopg.

    For the load's hot path: each row is a tuple in ``names`` order, with values psycopg writes as
    they are (``str`` for a JSON document, dates, decimals) — no per-value bind processors, no
    mapping per row. The caller falls back to :func:`insert_rows` when this answers False.

    With ``types`` (the columns' type OIDs, :func:`column_types`) the rows go in PostgreSQL's
    binary COPY format instead of text, and a ``jsonb`` value is its JSON text as UTF-8 ``bytes``
    (written as is, not encoded again). Why: the text format escapes every value on the client and
    parses every date, timestamp and number again on the server; on the load's event rows binary
    cost ≈ 1.7 instead of ≈ 4–5 µs of client CPU per row and ≈ 1.5 µs less of the server's
    (bench/README.md, the load), for the same stored values.
    """
    driver = _psycopg(conn)
    if driver is None:
        return False
    _copy_into(conn, driver, conn.dialect.identifier_preparer.format_table(table), names, rows, types=types)
    return True


class BinaryRowEncoder:
    """Encodes rows in PostgreSQL's binary ``COPY`` format ahead of time, in any thread, with no connection.

    Why: the load makes its event rows in the thread that reads ahead (``sink.loader.RowMaker``);
    formatting them there too leaves the thread that holds the transaction one ``write`` of bytes
    per chunk instead of a thousand ``write_row`` calls, each wanting the interpreter lock the
    reading thread holds (issue 12). psycopg formats binary rows only inside a ``Copy``, which needs
    a cursor of a live connection, so this calls the formatter ``Copy`` itself calls
    (``psycopg._copy_base.format_row_binary``, C in psycopg's binary package) with a transformer of
    psycopg's default adapters. psycopg is pinned in ``uv.lock``; ``tests/integration/test_sink_pg.py``
    copies encoded rows and reads them back, so an upgrade that moves it fails there. One
    encoder per thread (a transformer caches dumpers).
    """

    def __init__(self, types: Sequence[str]) -> None:
        from psycopg import adapt, postgres
        from psycopg.pq import Format

        adapters = adapt.AdaptersMap(postgres.adapters)
        adapters.register_dumper(bytes, _jsonb_text_dumper())  # jsonb from JSON text (see copy_rows)
        self.oids: list[int] = [postgres.types[name].oid for name in types]
        self._tx = adapt.Transformer(_AdaptContext(adapters))
        self._tx.set_dumper_types(self.oids, Format.BINARY)

    def encode(self, row: Sequence[Any]) -> bytes:
        """One row (values in the column order and Python types :func:`copy_rows` takes)."""
        from psycopg._copy_base import format_row_binary

        out = bytearray()
        format_row_binary(row, self._tx, out)
        return bytes(out)


class _AdaptContext:
    """The adaptation context psycopg's transformer reads: adapters, and no connection."""

    def __init__(self, adapters: Any) -> None:
        self.adapters = adapters
        self.connection = None


# PostgreSQL's binary COPY framing (its documentation, "COPY", "Binary Format"): an 11-byte
# signature, a 32-bit flags field and a 32-bit header-extension length; a 16-bit -1 ends the data.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\0" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_BINARY_TRAILER = b"\xff\xff"


def copy_encoded(conn: sa.Connection, table: sa.Table, names: Sequence[str], rows: Sequence[bytes]) -> bool:
    """``COPY table (names) FROM STDIN (FORMAT BINARY)`` of rows a :class:`BinaryRowEncoder` encoded.

    One write of the whole framed payload. False (nothing done) when not PostgreSQL through psycopg.
    """
    driver = _psycopg(conn)
    if driver is None:
        return False
    import psycopg

    quote = conn.dialect.identifier_preparer
    statement = f"COPY {quote.format_table(table)} ({', '.join(quote.quote(n) for n in names)}) FROM STDIN (FORMAT BINARY)"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(b"".join((_BINARY_HEADER, *rows, _BINARY_TRAILER)))
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error, dialect=conn.dialect) from exc
    return True


def column_types(conn: sa.Connection, table: sa.Table, names: Sequence[str]) -> list[int]:
    """The type OIDs of ``table``'s columns ``names`` as the database has them, for a binary :func:`copy_rows`.

    Read from the catalog rather than mapped from the models' types, so the binary format always
    matches the column it is written into (one query; call it once per load, not per chunk).
    """
    found: dict[str, int] = dict(
        conn.exec_driver_sql(
            "SELECT attname, atttypid::int FROM pg_attribute "
            "WHERE attrelid = %(table)s::regclass AND attnum > 0 AND NOT attisdropped",
            {"table": conn.dialect.identifier_preparer.format_table(table)},
        ).all()
    )
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{table.name} has no column(s) {missing}")
    return [int(found[n]) for n in names]


def upsert_rows(
    conn: sa.Connection,
    table: sa.Table,
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    key: Iterable[str],
) -> bool:
    """:func:`upsert` of tuples in ``names`` order (every column), as :func:`copy_rows` takes them.

    False (nothing done) when the connection is not PostgreSQL through psycopg.
    """
    if set(names) != set(table.columns.keys()):
        raise ValueError(f"upsert_rows needs every column of {table.name}")
    driver = _psycopg(conn)
    if driver is None:
        return False
    if rows:
        _merge_staged(conn, driver, table, names, rows, tuple(key))
    return True


def copies(conn: sa.Connection) -> bool:
    """Whether :func:`copy_rows` and :func:`upsert_rows` work on ``conn`` (PostgreSQL through psycopg)."""
    return _psycopg(conn) is not None


def _psycopg(conn: sa.Connection) -> Any | None:
    """The psycopg connection under ``conn`` on PostgreSQL, else None."""
    if conn.dialect.name != "postgresql":
        return None
    import psycopg

    driver = conn.connection.driver_connection
    return driver if isinstance(driver, psycopg.Connection) else None


def _processed(
    conn: sa.Connection, table: sa.Table, names: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> Iterator[list[Any]]:
    """Mapping rows as lists in ``names`` order, through the columns' bind processors."""
    dialect = conn.dialect
    processors = [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    for row in rows:
        yield [row[n] if p is None else p(row[n]) for n, p in zip(names, processors, strict=True)]


def _copy_into(
    conn: sa.Connection,
    driver: Any,
    target: str,
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    types: Sequence[int] | None = None,
) -> None:
    """``COPY target (names) FROM STDIN`` the rows (sequences in ``names`` order); binary with ``types``."""
    import psycopg

    quote = conn.dialect.identifier_preparer
    statement = f"COPY {target} ({', '.join(quote.quote(n) for n in names)}) FROM STDIN"
    if types is not None:
        statement += " (FORMAT BINARY)"
    try:
        with driver.cursor() as cursor:
            if types is not None:
                # this cursor only: a jsonb column takes its JSON text as bytes (see copy_rows)
                cursor.adapters.register_dumper(bytes, _jsonb_text_dumper())
            with cursor.copy(statement) as copy:
                if types is not None:
                    copy.set_types(list(types))
                write = copy.write_row
                for row in rows:
                    write(row)
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error, dialect=conn.dialect) from exc


@cache
def _jsonb_text_dumper() -> type:
    """A binary ``jsonb`` dumper for JSON text already encoded as UTF-8 bytes.

    psycopg's own ``Jsonb`` dumpers take a Python object and serialise it (a ``str`` would be
    stored as a JSON string, not parsed); the load has the document's text already (msgspec), and
    jsonb's binary input is a version byte (1) followed by that text.
    """
    from psycopg.adapt import Dumper
    from psycopg.postgres import types as pg_types
    from psycopg.pq import Format

    class JsonbTextBinaryDumper(Dumper):
        format = Format.BINARY
        oid = pg_types["jsonb"].oid

        def dump(self, obj: bytes) -> bytes:
            return b"\x01" + obj

    return JsonbTextBinaryDumper


def _upsert_staged(
    conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], key: tuple[str, ...]
) -> None:
    names = list(rows[0])
    driver = conn.connection.driver_connection
    _merge_staged(conn, driver, table, names, list(_processed(conn, table, names, rows)), key)


def _merge_staged(
    conn: sa.Connection,
    driver: Any,
    table: sa.Table,
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    key: tuple[str, ...],
) -> None:
    """COPY into a temporary twin of ``table`` (dropped at commit), then one set-based upsert.

    The staging table lives only in this session and transaction (``ON COMMIT DROP``), so
    concurrent loads never see each other's rows and a crash leaves nothing behind; it is emptied
    with TRUNCATE, not DELETE, so later chunks do not scan the dead rows of earlier ones.
    """
    quote = conn.dialect.identifier_preparer
    target = quote.format_table(table)
    stage = quote.quote(f"regsync_stage_{table.name}")
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} (LIKE {target} INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    _copy_into(conn, driver, stage, names, rows)
    columns = [quote.quote(c.name) for c in table.columns]
    keys = ", ".join(quote.quote(k) for k in key)
    updates = ", ".join(
        f"{quote.quote(c.name)} = EXCLUDED.{quote.quote(c.name)}" for c in table.columns if c.name not in key
    )
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {updates}"
    )
