"""Pipeline tables: connector state, extract and gate runs, DLQ replays, monthly metrics, GX results.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Written out in full rather than importing the models: a migration is a frozen record of the schema at
its revision. Builds before this revision made these tables with ``create_all``; a table that already
exists is adopted as is (its columns are those below), so such a database upgrades without error.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = (
    "connector_state",
    "extract_runs",
    "gate_runs",
    "dlq_replays",
    "monthly_metrics",
    "quality_runs",
    "quality_results",
)


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    """Create the seven tables and their indexes (adopting any an earlier build created)."""
    if _missing("connector_state"):
        op.create_table(
            "connector_state",
            sa.Column("source", sa.String(length=64), nullable=False),
            sa.Column("state_json", sa.Text(), nullable=False),
            sa.Column("raw_offsets_json", sa.Text(), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("source"),
        )
    if _missing("extract_runs"):
        op.create_table(
            "extract_runs",
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("source", sa.String(length=64), nullable=False),
            sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("read", sa.Integer(), nullable=False),
            sa.Column("not_childcare", sa.Integer(), nullable=False),
            sa.Column("published", sa.Integer(), nullable=False),
            sa.Column("recovered", sa.Integer(), nullable=False),
            sa.Column("invalid", sa.Integer(), nullable=False),
            sa.Column("error", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("run_id"),
        )
        op.create_index("ix_extract_runs_source", "extract_runs", ["source"], unique=False)
    if _missing("gate_runs"):
        op.create_table(
            "gate_runs",
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("consumed", sa.Integer(), nullable=False),
            sa.Column("valid", sa.Integer(), nullable=False),
            sa.Column("rejected", sa.Integer(), nullable=False),
            sa.Column("by_rule_json", sa.Text(), nullable=False),
            sa.Column("error", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("run_id"),
        )
    if _missing("dlq_replays"):
        op.create_table(
            "dlq_replays",
            sa.Column("replay_id", sa.String(length=64), nullable=False),
            sa.Column("who", sa.String(length=128), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("filter_json", sa.Text(), nullable=False),
            sa.Column("dry_run", sa.Boolean(), nullable=False),
            sa.Column("matched", sa.Integer(), nullable=False),
            sa.Column("replayed", sa.Integer(), nullable=False),
            sa.Column("positions_json", sa.Text(), nullable=False),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("replay_id"),
        )
    if _missing("monthly_metrics"):
        op.create_table(
            "monthly_metrics",
            sa.Column("month", sa.String(length=7), nullable=False),
            sa.Column(
                "valid_topic",
                sa.String(length=249),
                nullable=False,
                comment="tenants sharing a store stay apart",
            ),
            sa.Column("extracted", sa.Integer(), nullable=False),
            sa.Column("valid", sa.Integer(), nullable=False),
            sa.Column("rejected", sa.Integer(), nullable=False),
            sa.Column("connector_dlq", sa.Integer(), nullable=False),
            sa.Column("registrations", sa.Integer(), nullable=False),
            sa.Column("pushed_in_month", sa.Integer(), nullable=False),
            sa.Column("late_pushes", sa.Integer(), nullable=False),
            sa.Column("cross_registrar", sa.Integer(), nullable=False),
            sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("month", "valid_topic"),
        )
    if _missing("quality_runs"):
        op.create_table(
            "quality_runs",
            sa.Column("run_id", sa.String(length=200), nullable=False),
            sa.Column("suite", sa.String(length=64), nullable=False),
            sa.Column(
                "month",
                sa.String(length=7),
                nullable=True,
                comment="YYYY-MM the run judged; NULL for ad-hoc batches",
            ),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("duration_s", sa.Float(), nullable=True),
            sa.Column("success", sa.Boolean(), nullable=False),
            sa.Column("data_docs_path", sa.Text(), nullable=True),
            sa.Column(
                "metrics", JSONDOC, nullable=True, comment="row count, volume bounds, timeliness shares"
            ),
            sa.Column("params", JSONDOC, nullable=True, comment="the suite parameters the run used"),
            sa.PrimaryKeyConstraint("run_id", "suite", name="pk_quality_runs"),
        )
        op.create_index("ix_quality_runs_suite", "quality_runs", ["suite", "month"], unique=False)
    if _missing("quality_results"):
        op.create_table(
            "quality_results",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("run_id", sa.String(length=200), nullable=False),
            sa.Column("suite", sa.String(length=64), nullable=False),
            sa.Column(
                "position", sa.Integer(), nullable=False, comment="order of the expectation in the suite"
            ),
            sa.Column("expectation_type", sa.String(length=120), nullable=False),
            sa.Column(
                "column_name",
                sa.String(length=200),
                nullable=True,
                comment="column, or 'a,b' for a column pair",
            ),
            sa.Column(
                "row_condition", sa.String(length=400), nullable=True, comment="e.g. registrar == 'BIANZHI'"
            ),
            sa.Column("success", sa.Boolean(), nullable=False),
            sa.Column("element_count", sa.BigInteger(), nullable=True),
            sa.Column("unexpected_count", sa.BigInteger(), nullable=True),
            sa.Column("details", JSONDOC, nullable=True),
            sa.ForeignKeyConstraint(
                ["run_id", "suite"],
                ["quality_runs.run_id", "quality_runs.suite"],
                name="fk_quality_results_run_id_quality_runs",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name="pk_quality_results"),
            sa.UniqueConstraint("run_id", "suite", "position", name="uq_quality_results_run_id"),
        )
        op.create_index(
            "ix_quality_results_suite", "quality_results", ["suite", "expectation_type"], unique=False
        )


def downgrade() -> None:
    """Drop the seven tables (the pipeline's bookkeeping only; the filing store is untouched)."""
    for table in reversed(TABLES):
        op.drop_table(table)
