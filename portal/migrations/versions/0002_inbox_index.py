"""An index for the county inbox: ``institution_events (county_code, load_month, pushed_at, event_id)``.

Revision ID: p0002
Revises: p0001
Create Date: 2026-12-04

The inbox asks for one county's events of one month, newest push first, a page at a time. The sink's
``(load_month, county_code)`` index finds the month's rows but leaves a sort of all of them (tens of
thousands in a large county, p95 over 200 ms in ``bench/portal.py``); this one hands the page over in
order, and with ``event_id`` in it the unseen count is an index-only scan. It sits on a sink table but only the portal needs it, so the portal's history owns it (no
pipeline code compares the sink's models with a database the portal has migrated). Built ``CONCURRENTLY`` is not possible inside Alembic's
transaction; on a very large existing store create it by hand first (``IF NOT EXISTS`` then skips it).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "p0002"
down_revision: str | None = "p0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_portal_inbox"


def upgrade() -> None:
    """Create the index (idempotent, so a hand-made one is kept)."""
    op.create_index(
        NAME,
        "institution_events",
        ["county_code", "load_month", "pushed_at", "event_id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index(NAME, table_name="institution_events", if_exists=True)
