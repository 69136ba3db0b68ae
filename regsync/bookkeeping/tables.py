"""Every table of the pipeline's own bookkeeping, in one place, migrated by :mod:`regsync.bookkeeping.migrate`.

Connector cursors and run records (:mod:`regsync.bookkeeping.state`), the DLQ replay audit trail
(:mod:`regsync.stages.dlq`) and the report's monthly headline figures (:mod:`regsync.reporting`).
Declared here rather than in the modules that use them so the migrations need no stage module, and
the stages need not import each other to share one ``MetaData``. (Great Expectations results are
``quality.gx_results.metadata``: ``quality`` may not import the root.)
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

__all__ = [
    "connector_state",
    "dlq_replays",
    "extract_locks",
    "extract_runs",
    "gate_runs",
    "load_low_water",
    "metadata",
    "monthly_metrics",
]

metadata: Final = sa.MetaData()

connector_state = sa.Table(
    "connector_state",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("state_json", sa.Text, nullable=False),
    sa.Column("raw_offsets_json", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "published_ahead_json",
        sa.Text,
        nullable=False,
        server_default="[]",
        comment="event ids on raw past the committed cursor: a recovered run must not send them again",
    ),
)

extract_locks: Final = sa.Table(
    "extract_locks",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)
"""Who last took a source's extract lock, to name the holder when a second run is refused."""

extract_runs = sa.Table(
    "extract_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False, index=True),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),  # running | succeeded | failed
    sa.Column("read", sa.Integer, nullable=False, default=0),
    sa.Column("not_childcare", sa.Integer, nullable=False, default=0),
    sa.Column("published", sa.Integer, nullable=False, default=0),
    sa.Column("recovered", sa.Integer, nullable=False, default=0),
    sa.Column("invalid", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
)


gate_runs = sa.Table(
    "gate_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("consumed", sa.Integer, nullable=False, default=0),
    sa.Column("valid", sa.Integer, nullable=False, default=0),
    sa.Column("rejected", sa.Integer, nullable=False, default=0),
    sa.Column("by_rule_json", sa.Text, nullable=False, default="{}"),
    sa.Column("error", sa.Text),
)


dlq_replays = sa.Table(
    "dlq_replays",
    metadata,
    sa.Column("replay_id", sa.String(64), primary_key=True),
    sa.Column("who", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("filter_json", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("matched", sa.Integer, nullable=False),
    sa.Column("replayed", sa.Integer, nullable=False),
    sa.Column("positions_json", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
)


load_low_water: Final = sa.Table(
    "load_low_water",
    metadata,
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False, comment="every record before it is loaded"),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
"""Per valid-topic partition, the offset of the first record whose month is not loaded yet.

A monthly load scans from here to the end and selects its month by timestamp, so a record is found
wherever it sits; written after the load's transaction commits and only ever moved forward, so a
crash in between leaves it behind (a longer scan next time), never ahead (a record skipped).
"""


monthly_metrics: Final = sa.Table(
    "monthly_metrics",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("valid_topic", sa.String(249), primary_key=True, comment="tenants sharing a store stay apart"),
    sa.Column("extracted", sa.Integer, nullable=False),
    sa.Column("valid", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Integer, nullable=False),
    sa.Column("connector_dlq", sa.Integer, nullable=False),
    sa.Column("registrations", sa.Integer, nullable=False),
    sa.Column("pushed_in_month", sa.Integer, nullable=False),
    sa.Column("late_pushes", sa.Integer, nullable=False),
    sa.Column("cross_registrar", sa.Integer, nullable=False),
    sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
)
"""Headline figures of each reported month, so the trend does not re-read every month from Kafka."""
