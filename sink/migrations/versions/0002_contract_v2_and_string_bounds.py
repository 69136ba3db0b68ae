"""Contract v2 and string bounds: the stated division and industry codes; text columns get their bounds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

Contract v2 adds ``institution.stated_division_code`` and ``institution.industry_code``; the roster keeps
both. The free-text columns that hold event strings become ``varchar`` of the contract bound
(``schemas/limits.py``), so the store declares exactly what the gate lets through. The lengths are
written out here rather than imported: a migration is a frozen record of the schema at its revision.
On PostgreSQL the type change fails if a stored value is longer than its new bound (it cannot be, for
values that passed a gate with ``FIELD_TOO_LONG``; a value that did not would be found here, not lost).
SQLite rebuilds the table (batch mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BOUNDED_TEXT = (
    ("name", 200, False),
    ("address", 500, False),
    ("business_scope", 4000, False),
    ("legal_rep_name", 100, True),
)


def upgrade() -> None:
    """Add the two v2 columns and bound the text columns."""
    with op.batch_alter_table("institutions") as batch:
        batch.add_column(sa.Column("stated_division_code", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("industry_code", sa.String(length=8), nullable=True))
        for column, length, nullable in _BOUNDED_TEXT:
            batch.alter_column(
                column, existing_type=sa.Text(), type_=sa.String(length=length), existing_nullable=nullable
            )


def downgrade() -> None:
    """Back to unbounded text and no v2 columns (the v2 values are dropped; event_json still has them)."""
    with op.batch_alter_table("institutions") as batch:
        for column, length, nullable in _BOUNDED_TEXT:
            batch.alter_column(
                column, existing_type=sa.String(length=length), type_=sa.Text(), existing_nullable=nullable
            )
        batch.drop_column("industry_code")
        batch.drop_column("stated_division_code")
