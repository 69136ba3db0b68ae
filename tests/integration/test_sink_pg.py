"""The filing store on a real PostgreSQL: migrations, the monthly load's guarantees, exports, the gap.

Each test gets its own database (the ``database_url`` fixture). The roster PostgreSQL ends with is
compared with SQLite's for the same input, so the two supported stores behave alike.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from offset_ranges import ranges_of

from schemas.events import EventType, InstitutionStatus
from sink.errors import MonthConflictError
from sink.exports import export_month
from sink.filing import filing_gap, import_filings
from sink.loader import PositionedEvent, load_month
from sink.models import institutions, load_manifests, metadata
from sink.store import VERSION_TABLE, schema_diff, upgrade
from sink.synthetic import make_event, synthetic_month, uscc_for

TOPIC = "registrations.valid"


def load(engine, month, records, ranges=None, **kw):
    ranges = ranges_of(records) if ranges is None else ranges
    return load_month(
        engine, month=month, topic=TOPIC, positioned=records, offset_ranges=ranges, run_id="it", **kw
    )


def counts(engine):
    with engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.tables.values()
        }


def roster(engine):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(institutions).order_by(institutions.c.uscc))]


def test_migrations_on_postgres(pg, database_url):
    with pg.connect() as conn:
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == "0002"
        assert schema_diff(conn) == []
        kinds = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'institution_events'"
                )
            ).all()
        )
    assert kinds["event_json"] == "jsonb" and kinds["kafka_offset"] == "bigint"
    upgrade(database_url)  # idempotent


def test_load_reload_duplicates_and_same_roster_as_sqlite(pg, lite):
    records = list(synthetic_month(4000, partitions=4, seed=21))
    first = load(pg, "2025-03", records, chunk_size=700)
    assert (first.records, first.inserted, first.duplicates) == (4000, 4000, 0)
    before = counts(pg)
    again = load(pg, "2025-03", iter(()), ranges=first.offset_ranges)
    assert again.noop and again.checksum == first.checksum and counts(pg) == before
    # PostgreSQL, fed interleaved partitions, ends where SQLite fed sorted input ends
    load(lite, "2025-03", sorted(records, key=lambda r: (r.partition, r.offset)))
    assert roster(pg) == roster(lite)
    # a replayed event in the next month is skipped, not stored or folded twice
    replay = records[0]._replace(offset=50_000, timestamp_ms=records[0].timestamp_ms + 31 * 86_400_000)
    april = load(pg, "2025-04", [replay])
    assert (april.inserted, april.duplicates) == (0, 1)
    assert counts(pg)["institution_events"] == 4000


def test_abort_leaves_nothing_on_postgres(pg):
    u = uscc_for(5)
    ts = int(datetime(2025, 2, 3, tzinfo=UTC).timestamp() * 1000)
    load(pg, "2025-02", [PositionedEvent(9, 0, ts, make_event(u, EventType.ESTABLISHED, date(2025, 2, 3)))])
    before, before_roster = counts(pg), roster(pg)
    dereg = make_event(
        u, EventType.DEREGISTERED, date(2025, 3, 3), version=2, status=InstitutionStatus.DEREGISTERED
    )
    march = [
        PositionedEvent(9, 1, ts + 30 * 86_400_000, dereg),
        *synthetic_month(3000, seed=22, start_serial=100),
    ]

    def crash(i, _records):
        if i == 2:
            raise RuntimeError("killed in chunk 2")

    with pytest.raises(RuntimeError):
        load(pg, "2025-03", march, chunk_size=1000, on_chunk=crash)
    assert counts(pg) == before and roster(pg) == before_roster
    assert load(pg, "2025-03", march).inserted == len(march)


def test_replace_and_backfill_on_postgres(pg, lite):
    march = list(synthetic_month(2000, seed=23))
    april = list(synthetic_month(1000, month="2025-04", seed=23, first_offset=10_000, record_prefix="A"))
    load(pg, "2025-04", april)
    load(pg, "2025-03", [r for r in march if r.offset < 300])
    with pytest.raises(MonthConflictError):
        load(pg, "2025-03", march)
    assert load(pg, "2025-03", march, replace=True).replaced
    load(lite, "2025-03", march)
    load(lite, "2025-04", april)
    assert roster(pg) == roster(lite)
    with pg.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(load_manifests)).scalar_one() == 2


def test_exports_and_filing_gap_on_postgres(pg, tmp_path):
    records = list(synthetic_month(600, seed=24))
    load(pg, "2025-03", records)
    packages = export_month(pg, "2025-03", tmp_path / "out")
    assert sum(p.rows for p in packages) == 600
    again = export_month(pg, "2025-03", tmp_path / "again")
    assert [p.sha256["registrations.csv"] for p in packages] == [p.sha256["registrations.csv"] for p in again]
    with pg.connect() as conn:
        filed = conn.execute(
            sa.select(institutions.c.uscc, institutions.c.county_code)
            .where(institutions.c.status == "ACTIVE")
            .order_by(institutions.c.uscc)
            .limit(5)
        ).all()
    lines = ["统一社会信用代码,备案编号,备案日期,县级行政区划代码,状态"]
    lines += [f"{u},BA-{i},2025-03-28,{c},已备案" for i, (u, c) in enumerate(filed)]
    path = tmp_path / "filings.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    assert import_filings(pg, path).inserted == 5
    assert import_filings(pg, path).unchanged == 5
    report = filing_gap(pg, as_of=date(2025, 3, 31))
    with pg.connect() as conn:
        active = conn.execute(
            sa.select(sa.func.count()).select_from(institutions).where(institutions.c.status == "ACTIVE")
        ).scalar_one()
    assert report.totals == {"登记未备案": active - 5, "备案未登记": 0}


def test_staged_upsert_empties_its_stage_per_call_and_drops_it_at_commit(pg):
    """The roster upsert COPYs into a temporary stage: a second call in the same transaction must not
    re-apply the first call's rows, and nothing of the stage outlives the transaction."""
    from dataclasses import replace

    from sink.fold import fold
    from sink.store import upsert

    a, b = (fold(None, make_event(uscc_for(n), EventType.ESTABLISHED, date(2025, 3, 2))) for n in (1, 2))
    stage = sa.text("SELECT to_regclass('pg_temp.regsync_stage_institutions') IS NOT NULL")
    with pg.begin() as conn:
        upsert(conn, institutions, [a.to_row(), b.to_row()], key=["uscc"])
        assert conn.execute(stage).scalar_one()
        conn.execute(sa.update(institutions).where(institutions.c.uscc == b.uscc).values(name="改过"))
        upsert(conn, institutions, [replace(a, name="甲").to_row()], key=["uscc"])
        names = dict(conn.execute(sa.select(institutions.c.uscc, institutions.c.name)).all())
    assert names == {a.uscc: "甲", b.uscc: "改过"}  # b was not upserted again by the second call
    with pg.begin() as conn:
        assert not conn.execute(stage).scalar_one()  # dropped at commit
        upsert(conn, institutions, [replace(b, name="乙").to_row()], key=["uscc"])
    with pg.connect() as conn:
        names = dict(conn.execute(sa.select(institutions.c.uscc, institutions.c.name)).all())
    assert names == {a.uscc: "甲", b.uscc: "乙"}


def test_binary_copy_stores_what_the_text_copy_stores(pg):
    """The load's events go in PostgreSQL's binary COPY format: every value (NULLs, Chinese text,
    dates, instants, bigints, booleans, the history document given as JSON bytes) must be stored
    exactly as the text format stores it — and the document as a JSON object, not a JSON string."""
    from sink.loader import _EVENT_TYPES
    from sink.models import institution_events as ev
    from sink.store import BinaryRowEncoder, column_types, copy_encoded, copy_rows

    names = [c.name for c in ev.columns]

    def row(event_id, doc):
        return {
            "event_id": event_id,
            "uscc": "52370102MJ0000001X",
            "event_type": "ESTABLISHED",
            "registrar": "minzheng",
            "event_date": date(2025, 3, 2),
            "extracted_at": datetime(2025, 3, 3, 1, 2, 3, 456000, tzinfo=UTC),
            "pushed_at": None,
            "county_code": None,
            "load_month": "2025-03",
            "kafka_topic": TOPIC,
            "kafka_partition": 2,
            "kafka_offset": 2**40 + 7,
            "late": True,
            "event_json": doc,
        }

    doc = '{"name":"济南市历下区小太阳托育园","note":"引号\\"与\\\\反斜杠\\t","n":[1,2.5,null]}'
    text_row, binary_row = row("a" * 36, doc), row("b" * 36, doc.encode())
    encoded_row = row("c" * 36, doc.encode())
    encoder = BinaryRowEncoder(_EVENT_TYPES)
    with pg.begin() as conn:
        types = column_types(conn, ev, names)
        assert types == encoder.oids  # the load sends rows encoded ahead only when this holds
        assert copy_rows(conn, ev, names, [tuple(text_row[n] for n in names)])
        assert copy_rows(conn, ev, names, [tuple(binary_row[n] for n in names)], types=types)
        assert copy_encoded(conn, ev, names, [encoder.encode(tuple(encoded_row[n] for n in names))])
    with pg.connect() as conn:
        stored = {
            r[0]: r[1:]
            for r in conn.execute(
                sa.text(
                    "SELECT event_id, uscc, event_type, registrar, event_date, extracted_at, pushed_at, "
                    "county_code, load_month, kafka_topic, kafka_partition, kafka_offset, late, "
                    "event_json::text, jsonb_typeof(event_json) FROM institution_events"
                )
            )
        }
    assert stored["b" * 36] == stored["a" * 36] == stored["c" * 36]
    assert stored["b" * 36][-1] == "object"
    assert stored["b" * 36][4] == datetime(2025, 3, 3, 1, 2, 3, 456000, tzinfo=UTC)
    with pg.begin() as conn, pytest.raises(ValueError, match="no column"):
        column_types(conn, ev, ["event_id", "nope"])


def test_ids_with_a_newline_and_replays_load_as_on_sqlite(pg, lite):
    """The chunk's ids go to PostgreSQL as one newline-separated text; a chunk holding an id with a
    newline in it goes as a list instead. Both paths must find the replays and fold alike."""
    from sink.loader import PositionedRecord

    records = list(synthetic_month(600, partitions=2, seed=5))
    positioned = []
    for r in records:
        record = r.event.to_avro()
        if r.partition == 0 and r.offset % 10 == 3 and r.offset < 100:  # odd ids in the first chunk only
            record["event_id"] = record["event_id"][:20] + "\n" + record["event_id"][21:]
        positioned.append(PositionedRecord(r.partition, r.offset, r.timestamp_ms, record))
    last = {p: max(r.offset for r in positioned if r.partition == p) for p in (0, 1)}
    odd = next(r for r in positioned if "\n" in r.record["event_id"])
    odd_ids = sum("\n" in r.record["event_id"] for r in positioned)
    assert 0 < odd_ids < 20
    replays = [  # an odd id and a plain one again, later in their partitions (so both paths meet one)
        odd._replace(offset=last[odd.partition] + 1),
        positioned[1]._replace(offset=last[positioned[1].partition] + 2),
    ]
    month = sorted(positioned + replays, key=lambda r: (r.partition, r.offset))
    got = load(pg, "2025-03", month, chunk_size=200)
    assert (got.records, got.inserted, got.duplicates) == (602, 600, 2)
    load(lite, "2025-03", month, chunk_size=200)
    assert roster(pg) == roster(lite) and counts(pg)["institution_events"] == 600
    with pg.connect() as conn:
        assert (
            conn.execute(
                sa.text("SELECT count(*) FROM institution_events WHERE strpos(event_id, chr(10)) > 0")
            ).scalar_one()
            == odd_ids
        )


def test_rows_made_ahead_store_what_rows_made_in_the_load_store(pg, database_url):
    """The load's caller makes rows (and their binary COPY encoding) in its reading thread
    (:class:`sink.loader.RowMaker`). Whether a record comes with its row, with its row encoded, or
    with nothing, the store must end the same: events, roster, counts, late and out-of-month."""
    from sink.loader import PositionedRecord, RowMaker

    records = [
        PositionedRecord(r.partition, r.offset, r.timestamp_ms, r.event.to_avro())
        for r in synthetic_month(900, partitions=3, seed=31)
    ]
    # a record pushed after the month (counted out of month) and a replay (a duplicate)
    records[5] = records[5]._replace(timestamp_ms=records[5].timestamp_ms + 40 * 86_400_000)
    last = max(r.offset for r in records if r.partition == records[7].partition)
    records.append(records[7]._replace(offset=last + 1))
    records.sort(key=lambda r: (r.partition, r.offset))
    ranges = ranges_of(records)

    def stored(engine):
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT event_id, uscc, event_type, registrar, event_date, extracted_at, pushed_at, "
                        "county_code, late, kafka_partition, kafka_offset, event_json::text "
                        "FROM institution_events ORDER BY event_id"
                    )
                )
            ]

    plain = load(pg, "2025-03", records, ranges=ranges, chunk_size=250)
    expected = (stored(pg), roster(pg))
    assert plain.duplicates == 1 and plain.out_of_month == 1 and plain.late > 0

    for binary in (True, False):
        maker = RowMaker("2025-03", TOPIC, "Asia/Shanghai", binary=binary)
        # every third record arrives without its row: the load makes those itself
        mixed = [maker.prepare(*r[:4]) if i % 3 else r for i, r in enumerate(records)]
        assert any(r.encoded for r in mixed) is binary
        with pg.begin() as conn:
            conn.execute(sa.text("TRUNCATE institution_events, institutions, load_manifests"))
        got = load(pg, "2025-03", mixed, ranges=ranges, chunk_size=250, rows=maker)
        assert (got.records, got.inserted, got.duplicates, got.late, got.out_of_month) == (
            plain.records,
            plain.inserted,
            plain.duplicates,
            plain.late,
            plain.out_of_month,
        )
        assert got.checksum == plain.checksum
        assert (stored(pg), roster(pg)) == expected

    with pytest.raises(ValueError, match="made for 2025-04"):
        load(pg, "2025-03", records, ranges=ranges, rows=RowMaker("2025-04", TOPIC, "Asia/Shanghai"))
    with pytest.raises(ValueError, match="in UTC"):
        load(pg, "2025-03", records, ranges=ranges, rows=RowMaker("2025-03", TOPIC, "UTC"))


def test_rows_encoded_for_other_column_types_are_not_sent(pg):
    """Rows encoded ahead follow the types the models say; a database whose catalog says otherwise
    (a column altered by hand) gets the rows formatted against its own catalog instead."""
    from sink.loader import PositionedRecord, RowMaker

    records = [
        PositionedRecord(r.partition, r.offset, r.timestamp_ms, r.event.to_avro())
        for r in synthetic_month(200, partitions=1, seed=32)
    ]
    with pg.begin() as conn:
        conn.execute(sa.text("ALTER TABLE institution_events ALTER COLUMN kafka_partition TYPE bigint"))
    maker = RowMaker("2025-03", TOPIC, "Asia/Shanghai", binary=True)
    got = load(pg, "2025-03", [maker.prepare(*r[:4]) for r in records], rows=maker)
    assert got.inserted == 200
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT max(kafka_partition) FROM institution_events")).scalar_one() == 0
