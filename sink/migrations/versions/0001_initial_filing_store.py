"""Initial filing store: institutions, their events, load manifests, county pushes, filings.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Written out in full rather than importing ``sink.models``: a migration is a frozen record of the schema
at its revision, and must not change when the models move on.
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
MONTH = sa.String(length=7)


def upgrade() -> None:
    """Create the five tables and their indexes."""
    op.create_table(
        "institutions",
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("legal_form", sa.String(length=32), nullable=False),
        sa.Column("profit_nature", sa.String(length=16), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("county_resolution", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("childcare", sa.Boolean(), nullable=False),
        sa.Column("childcare_since", sa.Date(), nullable=True),
        sa.Column("business_scope", sa.Text(), nullable=False),
        sa.Column("registered_capital", sa.Numeric(precision=18, scale=6), nullable=True),
        sa.Column("capital_currency", sa.String(length=3), nullable=True),
        sa.Column("service_forms", sa.String(length=64), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("legal_rep_name", sa.Text(), nullable=True),
        sa.Column("legal_rep_id_masked", sa.String(length=32), nullable=True),
        sa.Column("legal_rep_phone_masked", sa.String(length=32), nullable=True),
        sa.Column("registrars", sa.String(length=64), nullable=False),
        sa.Column("first_registration_date", sa.Date(), nullable=True),
        sa.Column("last_event_id", sa.String(length=36), nullable=False),
        sa.Column("last_event_date", sa.Date(), nullable=False),
        sa.Column("last_event_type", sa.String(length=32), nullable=False),
        sa.Column("last_topic", sa.String(length=249), nullable=True),
        sa.Column("last_partition", sa.Integer(), nullable=True),
        sa.Column("last_offset", sa.BigInteger(), nullable=True),
        sa.Column("first_load_month", MONTH, nullable=False),
        sa.Column("last_load_month", MONTH, nullable=False),
        sa.PrimaryKeyConstraint("uscc", name=op.f("pk_institutions")),
    )
    op.create_index(op.f("ix_institutions_county_code"), "institutions", ["county_code"])

    op.create_table(
        "institution_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("registrar", sa.String(length=16), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("load_month", MONTH, nullable=False),
        sa.Column("kafka_topic", sa.String(length=249), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("event_json", JSONDOC, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_institution_events")),
    )
    op.create_index(op.f("ix_institution_events_uscc"), "institution_events", ["uscc"])
    op.create_index("ix_institution_events_month_county", "institution_events", ["load_month", "county_code"])
    op.create_index("ix_institution_events_month_topic", "institution_events", ["load_month", "kafka_topic"])

    op.create_table(
        "load_manifests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("month", MONTH, nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("offset_ranges", JSONDOC, nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("inserted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("institutions_touched", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_manifests")),
        sa.UniqueConstraint("month", "topic", name="uq_load_manifests_month_topic"),
    )

    op.create_table(
        "county_pushes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("month", MONTH, nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("county_name", sa.Text(), nullable=False),
        sa.Column("directory", sa.Text(), nullable=False),
        sa.Column("csv_path", sa.Text(), nullable=False),
        sa.Column("csv_sha256", sa.String(length=64), nullable=False),
        sa.Column("xlsx_path", sa.Text(), nullable=False),
        sa.Column("xlsx_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("counts_by_type", JSONDOC, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_county_pushes")),
    )
    op.create_index("ix_county_pushes_month_county", "county_pushes", ["month", "county_code"])

    op.create_table(
        "filings",
        sa.Column("filing_number", sa.String(length=64), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=True),
        sa.Column("filed_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("filing_number", name=op.f("pk_filings")),
    )
    op.create_index(op.f("ix_filings_uscc"), "filings", ["uscc"])
    op.create_index(op.f("ix_filings_county_code"), "filings", ["county_code"])


def downgrade() -> None:
    """Drop everything this revision created (indexes go with their tables)."""
    for table in ("filings", "county_pushes", "load_manifests", "institution_events", "institutions"):
        op.drop_table(table)
