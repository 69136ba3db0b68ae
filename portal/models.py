"""The portal's own tables, beside the filing store's, owned by Alembic (``portal/migrations``).

* ``portal_users`` — accounts: role and region (county code or division prefix), argon2 hash,
  ``session_epoch`` (bumped on logout, reset or disable, which invalidates every signed cookie).
* ``portal_tokens`` — roster-API bearer tokens: only the SHA-256 of the secret is stored.
* ``portal_login_failures`` — failed logins, for throttling (counted per user name).
* ``portal_audit`` — who did what, when, from where: logins, views, downloads, filings, API calls.
* ``portal_receipts`` — the first download of a county's monthly package by its bureau: the
  delivery confirmation the push lacks (who, when, SHA-256 of the bytes served).
* ``portal_seen`` — which pushed events a user has seen (the inbox marks the others).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ROLES = ("bureau", "city", "province", "auditor", "admin")
"""Account roles: a county bureau, a city (prefecture) or province health commission, auditors, admins."""

users = sa.Table(
    "portal_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("region", sa.String(6), nullable=False),  # county (6), city (4), province (2) or ""
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("session_epoch", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_login_at", sa.DateTime(timezone=True)),
)

tokens = sa.Table(
    "portal_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("department", sa.Text, nullable=False),
    sa.Column("region", sa.String(6), nullable=False),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("hint", sa.String(8), nullable=False),  # first characters, to tell tokens apart
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
)

login_failures = sa.Table(
    "portal_login_failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ip", sa.String(64)),
)

audit = sa.Table(
    "portal_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("actor", sa.Text, nullable=False),  # user name, "token:<id> <department>" or "-"
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("detail", sa.Text),
)

receipts = sa.Table(
    "portal_receipts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("county_code", sa.String(6), nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.UniqueConstraint("month", "county_code", name="uq_portal_receipts_month_county"),
)

seen = sa.Table(
    "portal_seen",
    metadata,
    sa.Column("user_id", sa.Integer, primary_key=True),
    sa.Column("event_id", sa.String(36), primary_key=True),
)
