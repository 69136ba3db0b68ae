"""``regsync trace USCC``: one institution's way through the system, for auditors.

Source record (lineage) → extraction run → raw offset → gate verdict (valid offset or DLQ position
with rules) → load manifest → filing-store row → county push package. Kafka is scanned by key, which
reads each topic once: fine for an investigation, not meant for a hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from regsync.kafka import bus
from regsync.kafka.topics import Topics
from schemas.events import RegistrationEvent, RejectedRecord
from schemas.masking import mask_text


@dataclass(slots=True)
class Hop:
    """One step of the trace: where, when, what."""

    stage: str
    where: str
    at: str
    what: str
    event_id: str | None = None


@dataclass(slots=True)
class Trace:
    """Everything found for one USCC, in pipeline order."""

    uscc: str
    hops: list[Hop] = field(default_factory=list)
    store_row: dict[str, Any] | None = None


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def trace(*, bootstrap: str, registry_url: str, database_url: str, topics: Topics, uscc: str) -> Trace:
    """Collect the hops of ``uscc`` from the three topics and the database."""
    key = uscc.strip().upper().encode("utf-8")
    codecs = bus.load_codecs(registry_url, topics)
    result = Trace(uscc.strip().upper())
    run_ids: set[str] = set()
    for record in bus.scan(bootstrap, topics.raw, {}, component="reports"):
        if record.key != key:
            continue
        event = RegistrationEvent.from_avro(codecs.raw.decode(record.value))
        lineage = event.lineage
        run_id = bus.header(record, bus.HEADER_RUN_ID)
        if run_id:
            run_ids.add(run_id)
        result.hops.append(
            Hop(
                "source",
                f"{lineage.source_system} record {lineage.source_record_id} v{lineage.source_version}",
                event.event_date.isoformat(),
                f"{event.event_type.value} ({event.event_type.label_zh}) by {event.registrar.value}; "
                f"cursor {lineage.cursor_value}",
                event.event_id,
            )
        )
        result.hops.append(
            Hop(
                "raw",
                f"{record.topic}[{record.partition}]@{record.offset}",
                _ts(record.timestamp),
                f"extracted by run {run_id}",
                event.event_id,
            )
        )
    for record in bus.scan(bootstrap, topics.valid, {}, component="reports"):
        if record.key != key:
            continue
        event = RegistrationEvent.from_avro(codecs.valid.decode(record.value))
        warnings = ",".join(sorted({w.rule_id for w in event.quality_warnings})) or "none"
        result.hops.append(
            Hop(
                "gate: valid",
                f"{record.topic}[{record.partition}]@{record.offset}",
                _ts(record.timestamp),
                f"accepted (raw @{bus.header(record, 'regsync.raw_offset')}); warnings {warnings}; "
                f"county {event.institution.county_code}",
                event.event_id,
            )
        )
    for record in bus.scan(bootstrap, topics.rejected, {}, component="reports"):
        if record.key != key:
            continue
        rejected = RejectedRecord.from_avro(codecs.rejected.decode(record.value))
        rules = ",".join(sorted({v.rule_id for v in rejected.violations}))
        result.hops.append(
            Hop(
                "gate: rejected",
                f"{record.topic}[{record.partition}]@{record.offset}",
                _ts(record.timestamp),
                f"rejected by {rules}: {mask_text(rejected.violations[0].message_zh) if rejected.violations else ''}",
                rejected.event.event_id if rejected.event else None,
            )
        )
    _from_database(result, database_url, run_ids)
    return result


def _from_database(result: Trace, database_url: str, run_ids: set[str]) -> None:
    from regsync.bookkeeping.state import extract_runs
    from sink.models import county_pushes, institution_events, institutions, load_manifests

    engine = sa.create_engine(database_url)
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            if run_ids and inspector.has_table("extract_runs"):
                for row in conn.execute(sa.select(extract_runs).where(extract_runs.c.run_id.in_(run_ids))):
                    result.hops.append(
                        Hop(
                            "extract run",
                            row.run_id,
                            str(row.started_at),
                            f"{row.source}: {row.status}, read {row.read}, published {row.published}",
                        )
                    )
            if not inspector.has_table("institution_events"):
                return
            months: set[str] = set()
            county: str | None = None
            for row in conn.execute(
                sa.select(institution_events)
                .where(institution_events.c.uscc == result.uscc)
                .order_by(institution_events.c.load_month, institution_events.c.kafka_offset)
            ):
                months.add(row.load_month)
                county = row.county_code or county
                result.hops.append(
                    Hop(
                        "store: event",
                        f"institution_events (load {row.load_month}, {row.kafka_topic}@{row.kafka_offset})",
                        str(row.pushed_at),
                        f"{row.event_type}{' (late)' if row.late else ''}, county {row.county_code}",
                        row.event_id,
                    )
                )
            for row in conn.execute(sa.select(load_manifests).where(load_manifests.c.month.in_(months))):
                result.hops.append(
                    Hop(
                        "load manifest",
                        f"{row.month} {row.topic}",
                        str(row.loaded_at),
                        f"run {row.run_id}: {row.records} records, checksum {row.checksum[:16]}…",
                    )
                )
            inst = conn.execute(sa.select(institutions).where(institutions.c.uscc == result.uscc)).first()
            if inst is not None:
                row_map = dict(inst._mapping)
                result.store_row = {
                    k: mask_text(str(v)) if isinstance(v, str) else v for k, v in row_map.items()
                }
            if county:
                for row in conn.execute(
                    sa.select(county_pushes).where(
                        county_pushes.c.month.in_(months), county_pushes.c.county_code == county
                    )
                ):
                    result.hops.append(
                        Hop(
                            "push package",
                            row.directory,
                            str(row.created_at),
                            f"{row.county_name}: {row.rows} rows, csv sha256 {row.csv_sha256[:16]}…",
                        )
                    )
    finally:
        engine.dispose()
