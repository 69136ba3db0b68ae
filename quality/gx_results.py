"""Suite outcomes stored run by run in SQL, so auditors see trends across months.

GX keeps its validation results as JSON files in a working copy; that is fine for browsing Data Docs
but useless for "how many invalid USCCs did 民政 send each month this year". Every
:class:`~quality.batch_checks.SuiteOutcome` is therefore also written to two tables (SQLAlchemy Core,
so the same code runs on the embedded SQLite default and on PostgreSQL):

* ``quality_runs`` — one row per (run, suite): month, start time, verdict, Data Docs path, and the
  figures computed beside GX (row count, timeliness shares) as JSON.
* ``quality_results`` — one row per expectation of the run: type, ``column_name`` (``a,b`` for a
  pair), ``row_condition``, verdict, counts and a JSON ``details`` (kwargs, masked sample, offending
  USCCs…). Names avoid SQL keywords (``column``, ``condition``) so auditors can query them unquoted.

:data:`metadata` is public: ``regsync.bookkeeping.migrate`` owns these tables' Alembic migrations (``quality``
imports nothing of the pipeline's); :func:`create_tables` is for this layer's own tests. :func:`store` is idempotent:
storing the same (run, suite) again replaces it in one transaction, so a retried task never doubles
a month.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

if TYPE_CHECKING:  # keep this module importable without GX: the CLI only reads trends
    from quality.batch_checks import SuiteOutcome

__all__ = [
    "TrendPoint",
    "create_tables",
    "metadata",
    "quality_results",
    "quality_runs",
    "store",
    "trend",
]

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so Alembic autogenerate produces stable migrations."""

metadata: Final = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""The tables of this module; fold into the filing store's migrations."""

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

quality_runs: Final = sa.Table(
    "quality_runs",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("suite", sa.String(64), primary_key=True),
    sa.Column(
        "month", sa.String(7), nullable=True, comment="YYYY-MM the run judged; NULL for ad-hoc batches"
    ),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("data_docs_path", sa.Text, nullable=True),
    sa.Column("metrics", _JSON, nullable=True, comment="row count, volume bounds, timeliness shares"),
    sa.Column("params", _JSON, nullable=True, comment="the suite parameters the run used"),
    sa.Index(None, "suite", "month"),
)

quality_results: Final = sa.Table(
    "quality_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), nullable=False),
    sa.Column("suite", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False, comment="order of the expectation in the suite"),
    sa.Column("expectation_type", sa.String(120), nullable=False),
    sa.Column("column_name", sa.String(200), nullable=True, comment="column, or 'a,b' for a column pair"),
    sa.Column("row_condition", sa.String(400), nullable=True, comment="e.g. registrar == 'BIANZHI'"),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("element_count", sa.BigInteger, nullable=True),
    sa.Column("unexpected_count", sa.BigInteger, nullable=True),
    sa.Column("details", _JSON, nullable=True),
    sa.ForeignKeyConstraint(
        ["run_id", "suite"], ["quality_runs.run_id", "quality_runs.suite"], ondelete="CASCADE"
    ),
    sa.UniqueConstraint("run_id", "suite", "position"),
    sa.Index(None, "suite", "expectation_type"),
)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One expectation's counts in one month (from the latest run of that month)."""

    month: str
    run_id: str
    started_at: datetime
    column: str | None
    condition: str | None
    success: bool
    element_count: int | None
    unexpected_count: int | None

    @property
    def unexpected_share(self) -> float | None:
        """``unexpected_count / element_count``, or ``None`` when there were no rows."""
        if not self.element_count or self.unexpected_count is None:
            return None
        return self.unexpected_count / self.element_count


def create_tables(engine: sa.Engine) -> None:
    """Create the tables if missing, for tests of this layer; the pipeline migrates them with Alembic."""
    metadata.create_all(engine)


def store(engine: sa.Engine, outcome: SuiteOutcome) -> None:
    """Write one suite outcome, replacing an earlier copy of the same (run, suite), atomically."""
    key = (quality_runs.c.run_id == outcome.run_id) & (quality_runs.c.suite == outcome.suite)
    run_row = {
        "run_id": outcome.run_id,
        "suite": outcome.suite,
        "month": outcome.month,
        "started_at": outcome.started_at,
        "duration_s": outcome.duration_s,
        "success": outcome.success,
        "data_docs_path": None if outcome.data_docs_path is None else str(outcome.data_docs_path),
        "metrics": _jsonable(outcome.metrics),
        "params": _jsonable(outcome.params),
    }
    result_rows = [
        {
            "run_id": outcome.run_id,
            "suite": outcome.suite,
            "position": position,
            "expectation_type": item.expectation_type,
            "column_name": item.column,
            "row_condition": item.condition,
            "success": item.success,
            "element_count": item.element_count,
            "unexpected_count": item.unexpected_count,
            "details": _jsonable(
                {
                    **item.details,
                    "unexpected_percent": item.unexpected_percent,
                    "unexpected_sample": list(item.unexpected_sample),
                    "observed_value": item.observed_value,
                    "exception": item.exception,
                }
            ),
        }
        for position, item in enumerate(outcome.per_expectation)
    ]
    with engine.begin() as conn:
        # Children first: SQLite does not enforce ON DELETE CASCADE unless asked per connection.
        conn.execute(
            sa.delete(quality_results).where(
                (quality_results.c.run_id == outcome.run_id) & (quality_results.c.suite == outcome.suite)
            )
        )
        conn.execute(sa.delete(quality_runs).where(key))
        conn.execute(sa.insert(quality_runs), [run_row])
        if result_rows:
            conn.execute(sa.insert(quality_results), result_rows)


def trend(
    engine: sa.Engine,
    suite: str,
    expectation: str,
    *,
    column: str | None = None,
    condition: str | None = None,
    all_runs: bool = False,
) -> list[TrendPoint]:
    """Per-month counts of one expectation type in one suite, oldest month first.

    A month re-run (a backfill, a retried DAG) has several runs; by default only the latest run of
    each month counts, because it judged the data as it now stands. ``all_runs`` returns every run.
    Expectations that repeat with different columns or conditions (not-null per column, timeliness
    per registrar) give one point each per month; narrow with ``column`` / ``condition``. Runs
    without a month (ad-hoc gate batches) are left out: a trend needs a month to sit on.
    """
    r, q = quality_runs.c, quality_results.c
    query = (
        sa.select(r.month, r.run_id, r.started_at, q.column_name, q.row_condition, q.success, q.element_count)
        .add_columns(q.unexpected_count)
        .select_from(
            quality_results.join(
                quality_runs, (quality_runs.c.run_id == q.run_id) & (quality_runs.c.suite == q.suite)
            )
        )
        .where(r.suite == suite, q.expectation_type == expectation, r.month.is_not(None))
        .order_by(r.month, r.started_at, r.run_id, q.position)
    )
    if column is not None:
        query = query.where(q.column_name == column)
    if condition is not None:
        query = query.where(q.row_condition == condition)
    with engine.connect() as conn:
        rows = conn.execute(query).all()

    points = [
        TrendPoint(
            month=row.month,
            run_id=row.run_id,
            started_at=_aware(row.started_at),
            column=row.column_name,
            condition=row.row_condition,
            success=bool(row.success),
            element_count=row.element_count,
            unexpected_count=row.unexpected_count,
        )
        for row in rows
    ]
    if all_runs:
        return points
    latest: dict[str, tuple[datetime, str]] = {}
    for point in points:  # rows are ordered by start time within a month: the last one wins
        latest[point.month] = (point.started_at, point.run_id)
    return [p for p in points if latest[p.month][1] == p.run_id]


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for ``DateTime(timezone=True)``; they were stored as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _jsonable(value: Any) -> Any:
    """Plain JSON values (NaN becomes null, unknown objects their text), for both JSON and JSONB."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value
