"""The portal's tables: users, tokens, login failures, audit log, receipts, seen state.

Revision ID: p0001
Revises:
Create Date: 2026-12-04

Written out in full (not imported from ``portal.models``): a migration is a frozen record.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the six tables and their indexes."""
    op.create_table(
        "portal_users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("session_epoch", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_login_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_portal_users"),
        sa.UniqueConstraint("username", name="uq_portal_users_username"),
    )
    op.create_table(
        "portal_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("department", sa.Text, nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("hint", sa.String(8), nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_portal_tokens"),
        sa.UniqueConstraint("token_sha256", name="uq_portal_tokens_token_sha256"),
    )
    op.create_table(
        "portal_login_failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("ip", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_portal_login_failures"),
    )
    op.create_index("ix_portal_login_failures_username", "portal_login_failures", ["username"])
    op.create_table(
        "portal_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("ip", sa.String(64)),
        sa.Column("detail", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_portal_audit"),
    )
    op.create_index("ix_portal_audit_at", "portal_audit", ["at"])
    op.create_table(
        "portal_receipts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_portal_receipts"),
        sa.UniqueConstraint("month", "county_code", name="uq_portal_receipts_month_county"),
    )
    op.create_table(
        "portal_seen",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "event_id", name="pk_portal_seen"),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` made."""
    for table in (
        "portal_seen",
        "portal_receipts",
        "portal_audit",
        "portal_login_failures",
        "portal_tokens",
        "portal_users",
    ):
        op.drop_table(table)
