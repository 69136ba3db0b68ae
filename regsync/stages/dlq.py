"""The dead-letter queue (``registrations.rejected``): list, show, replay — with an audit trail.

A replay re-submits the rejected events to ``registrations.raw`` (same key, a fresh push timestamp
from the as-of clock, a ``regsync.replay_of`` header naming the DLQ position) so the gate judges
them again, e.g. after a division-table update. Every replay, dry runs included, is recorded: who,
when, which filter, which DLQ positions. Records the connector could not even turn into events carry
no event and cannot be replayed; they are listed as such.
"""

from __future__ import annotations

import getpass
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from regsync.bookkeeping.migrate import ensure
from regsync.bookkeeping.tables import dlq_replays
from regsync.kafka import bus, headers
from regsync.kafka.topics import Topics
from schemas.events import RejectedRecord
from schemas.masking import mask_text
from schemas.month import DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class DlqFilter:
    """Which rejected records: by rule, source, USCC, month pushed (all optional)."""

    rule_id: str | None = None
    source: str | None = None
    uscc: str | None = None
    month: str | None = None  # YYYY-MM of the push (record timestamp), in the configured zone

    def _asdict(self) -> dict[str, Any]:
        return {"rule_id": self.rule_id, "source": self.source, "uscc": self.uscc, "month": self.month}


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """One rejected record and where it sits."""

    partition: int
    offset: int
    timestamp_ms: int
    source: str | None
    uscc: str | None
    rule_ids: tuple[str, ...]
    record: RejectedRecord

    @property
    def position(self) -> str:
        """``partition:offset``, the DLQ address used by ``show`` and the audit trail."""
        return f"{self.partition}:{self.offset}"

    @property
    def replayable(self) -> bool:
        """Only records that carry a decoded event can be judged again."""
        return self.record.event is not None

    def summary(self) -> dict[str, Any]:
        """A masked, one-line view for ``dlq list``."""
        event = self.record.event
        return {
            "position": self.position,
            "pushed_at": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "source": self.source,
            "uscc": self.uscc,
            "name": mask_text(event.institution.name) if event else None,
            "rules": ",".join(self.rule_ids),
            "reason": mask_text(self.record.violations[0].message_zh) if self.record.violations else "",
            "replayable": self.replayable,
        }


def _month_of(timestamp_ms: int, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(timestamp_ms / 1000, ZoneInfo(tz)).strftime("%Y-%m")


def entries(
    bootstrap: str, registry_url: str, topics: Topics, flt: DlqFilter, tz: str = DEFAULT_TIMEZONE
) -> Iterator[DlqEntry]:
    """Scan the DLQ (read_committed) and yield the entries matching ``flt``."""
    codecs = bus.load_codecs(registry_url, topics)
    for record in bus.scan(bootstrap, topics.rejected, {}, component="admin"):
        rejected = RejectedRecord.from_avro(codecs.rejected.decode(record.value))
        rule_ids = tuple(sorted({v.rule_id for v in rejected.violations}))
        uscc = (
            rejected.event.institution.uscc
            if rejected.event
            else (record.key or b"").decode("utf-8", "replace")
        )
        entry = DlqEntry(
            record.partition,
            record.offset,
            record.timestamp,
            bus.header(record, bus.HEADER_SOURCE),
            uscc,
            rule_ids,
            rejected,
        )
        if flt.rule_id and flt.rule_id not in rule_ids:
            continue
        if flt.source and flt.source != entry.source:
            continue
        if flt.uscc and flt.uscc != entry.uscc:
            continue
        if flt.month and _month_of(record.timestamp, tz) != flt.month:
            continue
        yield entry


def replay(
    *,
    bootstrap: str,
    registry_url: str,
    database_url: str,
    topics: Topics,
    flt: DlqFilter,
    as_of: datetime,
    dry_run: bool,
    who: str | None = None,
    reason: str | None = None,
    tz: str = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    """Re-submit matching replayable events to raw (unless ``dry_run``) and record the replay."""
    matched = list(entries(bootstrap, registry_url, topics, flt, tz))
    replayable = [e for e in matched if e.replayable]
    replay_id = f"replay-{uuid.uuid4().hex[:12]}"
    if not dry_run and replayable:
        codecs = bus.load_codecs(registry_url, topics)
        # An operator's act: re-submitting to raw is the admin's, not a connector's.
        producer = bus.idempotent_producer(bootstrap, "admin")
        try:
            futures = []
            for entry in replayable:
                event = entry.record.event
                assert event is not None
                futures.append(
                    producer.send(
                        topics.raw,
                        key=event.kafka_key,
                        value=codecs.raw.encode(event.to_wire()),
                        timestamp_ms=int(as_of.timestamp() * 1000),
                        headers=bus.headers(
                            [
                                (bus.HEADER_SOURCE, entry.source or "unknown"),
                                (bus.HEADER_EVENT_ID, event.event_id),
                                (headers.REPLAY_OF, f"{topics.rejected}:{entry.position}"),
                                (headers.REPLAY_ID, replay_id),
                            ]
                        ),
                    )
                )
            producer.flush()
            for future in futures:
                future.get(timeout=60)
        finally:
            producer.close()
    engine = sa.create_engine(database_url)
    try:
        ensure(engine)
        with engine.begin() as conn:
            conn.execute(
                dlq_replays.insert().values(
                    replay_id=replay_id,
                    who=who or getpass.getuser(),
                    at=datetime.now(UTC),
                    filter_json=json.dumps(flt._asdict(), ensure_ascii=False, sort_keys=True),
                    dry_run=dry_run,
                    matched=len(matched),
                    replayed=0 if dry_run else len(replayable),
                    positions_json=json.dumps([e.position for e in replayable]),
                    reason=reason,
                )
            )
    finally:
        engine.dispose()
    return {
        "replay_id": replay_id,
        "matched": len(matched),
        "replayable": len(replayable),
        "replayed": 0 if dry_run else len(replayable),
        "not_replayable": [e.position for e in matched if not e.replayable],
        "dry_run": dry_run,
    }


def replay_log(database_url: str) -> list[dict[str, Any]]:
    """The audit trail of replays, newest first."""
    engine = sa.create_engine(database_url)
    try:
        ensure(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(dlq_replays).order_by(dlq_replays.c.at.desc()))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()
