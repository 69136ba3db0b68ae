"""Replacing a loaded month, and recomputing the roster rows it had touched — from history.

A month loaded while still open (or from wrong offsets) has a manifest with other offset ranges.
``load_month(..., replace=True)`` calls :func:`delete_month` inside its transaction, then loads the
month afresh. How the roster stays right, honestly:

1. Every institution with an event in the old load is **deleted** from ``institutions``: its row
   mixed in events that are about to disappear, and a fold cannot be undone.
2. The month's events and its manifest are deleted.
3. :func:`recompute_missing` rebuilds each institution that still has events in the history (other
   months) but no roster row, by folding all its stored events again, ordered by (load month,
   partition, offset) with their positions — the order and the positions they were first folded
   with, so the result is what those loads produced.
4. The caller then loads the new ranges as usual; their events fold onto the rebuilt rows, and an
   institution that already has a later month's events (same partition, higher offset) is re-folded
   from its whole history by :func:`refold`, exactly as in any backfill.

Cost: proportional to the history of the institutions the month touched, read in pages of
``page_size`` institutions (memory flat). Package exports of the replaced month are stale
afterwards: re-run :func:`sink.exports.export_month`.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlalchemy as sa

from sink.eventjson import event_from_json
from sink.fold import InstitutionState, Position, fold
from sink.models import institution_events, institutions, load_manifests
from sink.store import upsert

__all__ = ["delete_month", "recompute_missing", "refold"]


def delete_month(conn: sa.Connection, *, month: str, topic: str, page_size: int = 1000) -> int:
    """Delete the (month, topic) load and recompute the roster rows it touched; returns events deleted."""
    ev = institution_events
    in_month = sa.and_(ev.c.load_month == month, ev.c.kafka_topic == topic)
    touched = sa.select(ev.c.uscc).where(in_month)
    conn.execute(sa.delete(institutions).where(institutions.c.uscc.in_(touched)))
    deleted = conn.execute(sa.delete(ev).where(in_month)).rowcount
    conn.execute(
        sa.delete(load_manifests).where(load_manifests.c.month == month, load_manifests.c.topic == topic)
    )
    recompute_missing(conn, page_size=page_size)
    return deleted


def recompute_missing(conn: sa.Connection, *, page_size: int = 1000) -> int:
    """Fold the stored history of every institution that has events but no roster row.

    Pages by USCC (keyset), so neither the list of institutions nor their histories is held whole.
    Returns how many institutions were rebuilt.
    """
    ev = institution_events
    missing = (
        sa.select(ev.c.uscc)
        .distinct()
        .select_from(ev.outerjoin(institutions, institutions.c.uscc == ev.c.uscc))
        .where(institutions.c.uscc.is_(None))
        .order_by(ev.c.uscc)
        .limit(page_size)
    )
    rebuilt, after = 0, ""
    while page := list(conn.scalars(missing.where(ev.c.uscc > after))):
        rebuilt += len(refold(conn, page))
        after = page[-1]
    return rebuilt


def refold(conn: sa.Connection, usccs: Collection[str]) -> dict[str, InstitutionState]:
    """Fold the whole stored history of these institutions again, in order, and upsert the result.

    Order is (load month, partition, offset) — the order the events were read in, month by month —
    with each event's own position and load month, so the result is what loading every month in
    order would have produced. Used after a month is deleted and when a backfilled month brings
    events older than ones already applied.
    """
    ev = institution_events
    history = (
        sa.select(ev.c.uscc, ev.c.event_json, ev.c.kafka_topic, ev.c.kafka_partition, ev.c.kafka_offset)
        .add_columns(ev.c.load_month)
        .where(ev.c.uscc.in_(list(usccs)))
        .order_by(ev.c.uscc, ev.c.load_month, ev.c.kafka_partition, ev.c.kafka_offset)
    )
    states: dict[str, InstitutionState] = {}
    for row in conn.execute(history):
        position = Position(row.kafka_topic, row.kafka_partition, row.kafka_offset)
        states[row.uscc] = fold(
            states.get(row.uscc),
            event_from_json(row.event_json),
            position=position,
            load_month=row.load_month,
        )
    upsert(conn, institutions, [s.to_row() for s in states.values()], key=["uscc"])
    return states
