"""Per-partition low-water offsets of the monthly load (issue 16, item 1: order-free month windows).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

``load_low_water``: for each partition of a valid topic, the offset of the first record whose month
is not loaded yet. The load scans from there and selects its month by the records' timestamps, so
push timestamps need not be in offset order. A database without rows scans from the beginning once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table (adopting one a ``create_all`` build already made)."""
    if sa.inspect(op.get_bind()).has_table("load_low_water"):
        return
    op.create_table(
        "load_low_water",
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False, comment="every record before it is loaded"),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )


def downgrade() -> None:
    """Drop it again."""
    op.drop_table("load_low_water")
