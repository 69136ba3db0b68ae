"""Extract recovery that survives repeated kills, and the holder of each source's extract lock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04

``connector_state.published_ahead_json``: the event ids a recovery scan found on raw past the
committed cursor, persisted before the recovering run publishes anything (issue 13 item 1).
``extract_locks``: which run holds a source's extract lock, so a refused second run names it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column and the table (adopting them where a ``create_all`` build already made them)."""
    inspector = sa.inspect(op.get_bind())
    columns = {c["name"] for c in inspector.get_columns("connector_state")}
    if "published_ahead_json" not in columns:
        _add_column()
    if not inspector.has_table("extract_locks"):
        op.create_table(
            "extract_locks",
            sa.Column("source", sa.String(length=64), nullable=False),
            sa.Column("run_id", sa.String(length=64), nullable=False),
            sa.Column("holder", sa.String(length=255), nullable=False),
            sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("source"),
        )


def _add_column() -> None:
    with op.batch_alter_table("connector_state") as batch:
        batch.add_column(
            sa.Column(
                "published_ahead_json",
                sa.Text(),
                nullable=False,
                server_default="[]",
                comment="event ids on raw past the committed cursor: a recovered run must not send them again",
            )
        )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("extract_locks")
    with op.batch_alter_table("connector_state") as batch:
        batch.drop_column("published_ahead_json")
