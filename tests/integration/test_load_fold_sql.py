"""The set-based fold (sink/fold_sql.py) against the Python fold, on a real PostgreSQL.

Random histories over every event type (moves, county-less snapshots, 托班 on known and unknown
institutions, scope switched off and on, second registrars, masked IDs typed into names), spread
over two months and small chunks so institutions straddle chunks and months (the stored-row paths),
partitions interleaved: the roster PostgreSQL ends with must equal, row for row, both the same load
on PostgreSQL with the fold in Python (``sql_fold=False``) and on SQLite. A spy counts the
institutions handed back to Python, so the test also fails if the SQL path silently did nothing.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from offset_ranges import ranges_of

from schemas.events import EventType, InstitutionStatus, JurisdictionMove, LegalRepresentative, Registrar
from sink import loader
from sink.loader import PositionedEvent, load_month
from sink.models import institutions
from sink.synthetic import make_event, uscc_for

TOPIC = "registrations.valid"
PARTITIONS = 3
KINDS = list(EventType)
COUNTIES = ("441802", "441803", "441821", None)


def history(seed: int, n: int) -> dict[str, list[PositionedEvent]]:
    """Events for ``n`` institutions in two months, each institution on one partition."""
    rng = random.Random(seed)
    offsets = [0] * PARTITIONS
    months: dict[str, list[PositionedEvent]] = {"2025-03": [], "2025-04": []}
    for serial in range(n):
        uscc = uscc_for(serial, division="441800")
        partition = serial % PARTITIONS
        when = date(2025, 3, 1) + timedelta(days=rng.randrange(5))
        for version in range(1, rng.randint(2, 7)):
            kind = EventType.ESTABLISHED if version == 1 and rng.random() < 0.7 else rng.choice(KINDS)
            county = rng.choice(COUNTIES)
            move = None
            if kind in (EventType.MOVED_IN, EventType.MOVED_OUT):
                move = JurisdictionMove(rng.choice(COUNTIES), rng.choice(COUNTIES))
            rep = rng.choice(
                (
                    None,
                    LegalRepresentative("李四", "441802199001011234", True, "13812345678"),
                    LegalRepresentative("王五"),
                )
            )
            event = make_event(
                uscc,
                kind,
                when,
                registrar=rng.choice(list(Registrar)),
                county=county,
                version=version,
                status=rng.choice(list(InstitutionStatus)),
                name=rng.choice((None, f"托育中心（法人身份证441802199001011234）{serial}")),
                rep=rep,
                move=move,
            )
            month = "2025-03" if when < date(2025, 4, 1) else "2025-04"
            pushed = datetime.combine(when, datetime.min.time(), UTC) + timedelta(hours=12)
            months[month].append(
                PositionedEvent(partition, offsets[partition], int(pushed.timestamp() * 1000), event)
            )
            offsets[partition] += 1
            when += timedelta(days=rng.randrange(0, 9))
    for records in months.values():  # interleave partitions, keep each partition's offset order
        rng.shuffle(records)
        by_partition: dict[int, list[PositionedEvent]] = {}
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            by_partition.setdefault(r.partition, []).append(r)
        records[:] = [by_partition[r.partition].pop(0) for r in records]
    return months


def roster(engine):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(institutions).order_by(institutions.c.uscc))]


def load_all(engine, months, order, **kw):
    for month in order:
        records = months[month]
        load_month(
            engine,
            month=month,
            topic=TOPIC,
            positioned=records,
            offset_ranges=ranges_of(records),
            run_id="it",
            chunk_size=37,
            **kw,
        )


@pytest.mark.parametrize(
    "order", [("2025-03", "2025-04"), ("2025-04", "2025-03")], ids=["in-order", "backfill"]
)
def test_sql_fold_equals_the_python_fold(pg, lite, order, monkeypatch):
    months = history(seed=12, n=400)
    handed_back: list[int] = []
    python_fold = loader._Run._fold

    def spy(self, fresh):
        handed_back.append(len(fresh))
        return python_fold(self, fresh)

    monkeypatch.setattr(loader._Run, "_fold", spy)
    load_all(pg, months, order)
    sql_roster = roster(pg)
    folded_in_python = sum(handed_back)
    events = sum(len(r) for r in months.values())
    assert 0 < folded_in_python < events  # both paths ran
    load_all(lite, months, order)
    assert sql_roster == roster(lite)
    with pg.begin() as conn:  # the same load folded in Python on PostgreSQL
        conn.execute(sa.text("TRUNCATE institutions, institution_events, load_manifests"))
    load_all(pg, months, order, sql_fold=False)
    assert roster(pg) == sql_roster
