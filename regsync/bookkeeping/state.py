"""The pipeline's own state: connector cursors and the record of every extraction run.

A connector's state is committed here only after the broker acknowledged the batch it covers, in
one transaction with the raw-topic offsets reached and the run's running counts. Works on
PostgreSQL (production, tests) and SQLite (the embedded default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from regsync.bookkeeping.tables import connector_state, extract_runs, gate_runs


@dataclass(slots=True)
class SavedState:
    """What the last commit left for a source."""

    state: dict[str, Any] = field(default_factory=dict)
    raw_offsets: dict[int, int] = field(default_factory=dict)
    exists: bool = False
    published_ahead: set[str] = field(default_factory=set)  # event ids on raw past the cursor


@dataclass(slots=True)
class RunCounts:
    """Running totals of one extraction run."""

    read: int = 0
    not_childcare: int = 0
    published: int = 0
    recovered: int = 0
    invalid: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class StateStore:
    """Cursor and run bookkeeping over SQLAlchemy."""

    def __init__(self, url: str) -> None:
        from regsync.bookkeeping.migrate import ensure

        self.engine = sa.create_engine(url, future=True)
        ensure(self.engine)

    def load(self, source: str) -> SavedState:
        """The last committed state of ``source`` (empty on its first run)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    connector_state.c.state_json,
                    connector_state.c.raw_offsets_json,
                    connector_state.c.published_ahead_json,
                ).where(connector_state.c.source == source)
            ).first()
        if row is None:
            return SavedState()
        offsets = {int(k): int(v) for k, v in json.loads(row.raw_offsets_json).items()}
        ahead = set(json.loads(row.published_ahead_json or "[]"))
        return SavedState(json.loads(row.state_json), offsets, True, ahead)

    def previous_as_of(self, source: str, run_id: str) -> datetime | None:
        """The latest as-of of any other run of ``source`` (``None`` before its first run).

        Every record an earlier run pushed is stamped at or before it, so a record read now is
        stamped after it (:func:`regsync.stages.extract.push_stamp`).
        """
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.func.max(extract_runs.c.as_of)).where(
                    extract_runs.c.source == source, extract_runs.c.run_id != run_id
                )
            ).scalar_one()
        if found is None:
            return None
        return found if found.tzinfo is not None else found.replace(tzinfo=UTC)  # SQLite drops the zone

    def start_run(self, run_id: str, source: str, as_of: datetime) -> None:
        """Record that a run began (a crash leaves it 'running': visible in the audit trail)."""
        with self.engine.begin() as conn:
            conn.execute(
                extract_runs.insert().values(
                    run_id=run_id, source=source, as_of=as_of, started_at=_now(), status="running"
                )
            )

    def commit(
        self,
        source: str,
        run_id: str,
        state: dict[str, Any],
        raw_offsets: dict[int, int],
        counts: RunCounts,
        published_ahead: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Cursor, offsets, the ids published past the cursor and counts in one transaction.

        Raw offsets only ever advance together with ``published_ahead``: whatever lies on raw between
        the old and the new offsets and is not behind the cursor yet is named there, so a run killed
        after this commit still knows not to send it again.
        """
        values = {
            "state_json": json.dumps(state, ensure_ascii=False, sort_keys=True),
            "raw_offsets_json": json.dumps({str(k): v for k, v in sorted(raw_offsets.items())}),
            "published_ahead_json": json.dumps(sorted(published_ahead)),
            "run_id": run_id,
            "updated_at": _now(),
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                connector_state.update().where(connector_state.c.source == source).values(**values)
            ).rowcount
            if not updated:
                conn.execute(connector_state.insert().values(source=source, **values))
            conn.execute(
                extract_runs.update()
                .where(extract_runs.c.run_id == run_id)
                .values(
                    read=counts.read,
                    not_childcare=counts.not_childcare,
                    published=counts.published,
                    recovered=counts.recovered,
                    invalid=counts.invalid,
                )
            )

    def finish_run(self, run_id: str, counts: RunCounts, error: str | None = None) -> None:
        """Close the run record with its outcome."""
        with self.engine.begin() as conn:
            conn.execute(
                extract_runs.update()
                .where(extract_runs.c.run_id == run_id)
                .values(
                    finished_at=_now(),
                    status="failed" if error else "succeeded",
                    error=error,
                    read=counts.read,
                    not_childcare=counts.not_childcare,
                    published=counts.published,
                    recovered=counts.recovered,
                    invalid=counts.invalid,
                )
            )

    def start_gate_run(self, run_id: str) -> None:
        """A gate run begins (killed runs stay 'running' in the audit trail)."""
        with self.engine.begin() as conn:
            conn.execute(gate_runs.insert().values(run_id=run_id, started_at=_now(), status="running"))

    def update_gate_run(
        self, run_id: str, counts: Any, *, status: str | None = None, error: str | None = None
    ) -> None:
        """Running totals after each committed transaction (best effort: Kafka holds the truth)."""
        values: dict[str, Any] = {
            "consumed": counts.consumed,
            "valid": counts.valid,
            "rejected": counts.rejected,
            "by_rule_json": json.dumps(counts.by_rule, sort_keys=True),
        }
        if status:
            values.update(status=status, finished_at=_now(), error=error)
        with self.engine.begin() as conn:
            conn.execute(gate_runs.update().where(gate_runs.c.run_id == run_id).values(**values))

    def finish_gate_run(self, run_id: str, counts: Any, error: str | None = None) -> None:
        """Close a gate run record."""
        self.update_gate_run(run_id, counts, status="failed" if error else "succeeded", error=error)

    def gate_runs(self) -> list[dict[str, Any]]:
        """Gate run records, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(gate_runs).order_by(gate_runs.c.started_at.desc()))
            return [dict(r._mapping) for r in rows]

    def runs(self, source: str | None = None) -> list[dict[str, Any]]:
        """Run records, newest first (for reports and tests)."""
        query = sa.select(extract_runs).order_by(extract_runs.c.started_at.desc())
        if source:
            query = query.where(extract_runs.c.source == source)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()
