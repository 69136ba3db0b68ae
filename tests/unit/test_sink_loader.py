"""The monthly load on SQLite: one transaction, no-op re-runs, each event once, crash leaves nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from offset_ranges import ranges_of

from schemas.events import EventType, InstitutionStatus, Registrar
from sink.errors import MonthConflictError, PositionError
from sink.loader import PositionedEvent, find_manifest, load_month
from sink.models import institution_events, institutions, load_manifests, metadata
from sink.store import VERSION_TABLE, create_engine, schema_diff, upgrade
from sink.synthetic import make_event, synthetic_month, uscc_for

TOPIC = "registrations.valid"


@pytest.fixture
def engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    eng = create_engine(url)
    yield eng
    eng.dispose()


def new_engine(tmp_path, name):
    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    return create_engine(url)


def load(engine, month, records, ranges=None, **kw):
    return load_month(
        engine,
        month=month,
        topic=TOPIC,
        positioned=records,
        offset_ranges=ranges if ranges is not None else ranges_of(records),
        run_id=f"run-{month}",
        **kw,
    )


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def rec(partition, offset, event, pushed=None):
    pushed = pushed or datetime(2025, 3, 15, 2, tzinfo=UTC)
    return PositionedEvent(partition, offset, ms(pushed), event)


def counts(engine):
    with engine.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.tables.values()
        }


def roster(engine):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(institutions).order_by(institutions.c.uscc))]


def manifests(engine):
    with engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(sa.select(load_manifests).order_by(load_manifests.c.id)).mappings()
        ]


def test_migrations_create_the_model_schema(engine, tmp_path):
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert {
            "institutions",
            "institution_events",
            "load_manifests",
            "county_pushes",
            "filings",
            VERSION_TABLE,
        } <= names
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == "0002"
        assert schema_diff(conn) == []
        # someone else's table in the same database is not ours to drop
        conn.execute(sa.text("CREATE TABLE connector_state (source TEXT PRIMARY KEY)"))
        assert schema_diff(conn) == []
    upgrade(engine)  # already at head: nothing to do, no error
    assert "alembic_version" not in names


def test_migrations_downgrade_and_upgrade_again(engine):
    from alembic import command

    from sink.store import alembic_config

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) == {VERSION_TABLE}
    upgrade(engine)
    with engine.connect() as conn:
        assert schema_diff(conn) == []


def test_load_then_reload_is_a_noop(engine):
    records = list(synthetic_month(2500, seed=1))
    first = load(engine, "2025-03", records, chunk_size=400)
    assert not first.noop and first.records == first.inserted == 2500 and first.duplicates == 0
    assert first.chunks == 7
    before_counts, before_roster, before_manifests = counts(engine), roster(engine), manifests(engine)

    def must_not_be_read():
        raise AssertionError("a no-op must not consume the records")
        yield

    again = load(engine, "2025-03", must_not_be_read(), ranges=first.offset_ranges)
    assert again.noop
    assert (again.records, again.inserted, again.checksum) == (first.records, first.inserted, first.checksum)
    assert counts(engine) == before_counts
    assert roster(engine) == before_roster
    assert manifests(engine) == before_manifests
    assert find_manifest(engine, "2025-03", TOPIC)["checksum"] == first.checksum


def test_empty_month_writes_a_manifest(engine):
    result = load(engine, "2025-02", [], ranges={0: (5, 5), 1: (7, 7)})
    assert (result.records, result.inserted, result.institutions_touched) == (0, 0, 0)
    assert load(engine, "2025-02", [], ranges={0: (5, 5), 1: (7, 7)}).noop


def test_an_event_given_twice_is_stored_once(engine):
    u = uscc_for(7)
    est = make_event(u, EventType.ESTABLISHED, date(2025, 3, 2))
    dereg = make_event(
        u, EventType.DEREGISTERED, date(2025, 3, 20), version=2, status=InstitutionStatus.DEREGISTERED
    )
    # within one load (a replay inside the month) ...
    march = load(engine, "2025-03", [rec(0, 0, est), rec(0, 1, dereg), rec(0, 2, est)])
    assert (march.records, march.inserted, march.duplicates) == (3, 2, 1)
    # ... and across months: the replayed 设立 must neither be stored again nor resurrect the institution
    april_new = make_event(uscc_for(8), EventType.ESTABLISHED, date(2025, 4, 2))
    april = load(
        engine,
        "2025-04",
        [
            rec(0, 3, est, datetime(2025, 4, 3, tzinfo=UTC)),
            rec(0, 4, april_new, datetime(2025, 4, 3, tzinfo=UTC)),
        ],
    )
    assert (april.inserted, april.duplicates, april.institutions_touched) == (1, 1, 1)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(institution_events.c.event_id, institution_events.c.load_month).where(
                institution_events.c.uscc == u
            )
        ).all()
        status = conn.execute(sa.select(institutions.c.status).where(institutions.c.uscc == u)).scalar_one()
    assert sorted(stored) == sorted([(est.event_id, "2025-03"), (dereg.event_id, "2025-03")])
    assert status == "DEREGISTERED"


def test_interleaved_partitions_give_the_same_state_as_sorted_input(tmp_path):
    records = list(synthetic_month(3000, partitions=4, seed=3))
    assert len({r.partition for r in records[:8]}) > 1  # the stream does interleave
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    a, b = new_engine(tmp_path, "a.db"), new_engine(tmp_path, "b.db")
    ra = load(a, "2025-03", records, chunk_size=250)
    rb = load(b, "2025-03", ordered, chunk_size=999)
    assert roster(a) == roster(b)
    assert (
        ra.checksum == rb.checksum
        and ra.late == rb.late
        and ra.institutions_touched == rb.institutions_touched
    )


def test_late_flag_follows_the_push_month_in_the_timezone(engine):
    pushed_april_in_shanghai = datetime(2025, 3, 31, 16, 30, tzinfo=UTC)  # 2025-04-01 00:30 +08:00
    on_time = make_event(uscc_for(1), EventType.ESTABLISHED, date(2025, 4, 1))
    late_by_tz = make_event(uscc_for(2), EventType.ESTABLISHED, date(2025, 3, 31))
    late = make_event(uscc_for(3), EventType.ESTABLISHED, date(2025, 2, 27))
    records = [
        rec(0, 0, on_time, pushed_april_in_shanghai),
        rec(0, 1, late_by_tz, pushed_april_in_shanghai),
        rec(1, 0, late, datetime(2025, 4, 10, tzinfo=UTC)),
    ]
    result = load(engine, "2025-04", records)
    assert (result.late, result.out_of_month) == (2, 0)
    with engine.connect() as conn:
        flags = dict(conn.execute(sa.select(institution_events.c.uscc, institution_events.c.late)).all())
    assert flags == {uscc_for(1): False, uscc_for(2): True, uscc_for(3): True}


def test_abort_mid_load_leaves_nothing(engine):
    u = uscc_for(11)
    load(engine, "2025-02", [rec(0, 0, make_event(u, EventType.ESTABLISHED, date(2025, 2, 3)))])
    before_counts, before_roster, before_manifests = counts(engine), roster(engine), manifests(engine)
    dereg = make_event(u, EventType.DEREGISTERED, date(2025, 3, 3), version=2)
    march = [rec(9, 0, dereg), *synthetic_month(2500, seed=5, start_serial=1000)]
    seen = []

    def crash(i, records):
        seen.append((i, records))
        if i == 1:
            raise RuntimeError("killed after chunk 1")

    with pytest.raises(RuntimeError, match="killed"):
        load(engine, "2025-03", march, chunk_size=1000, on_chunk=crash)
    assert seen == [(0, 1000), (1, 2000)]
    assert counts(engine) == before_counts
    assert roster(engine) == before_roster
    assert manifests(engine) == before_manifests
    # and the month loads cleanly afterwards
    assert load(engine, "2025-03", march).inserted == len(march)


def test_other_ranges_conflict_unless_replaced(tmp_path):
    """A month loaded while still open is replaced; the roster is recomputed from history."""
    march = list(synthetic_month(3000, seed=9))
    # the same institutions one month on: new event ids, later offsets
    april = list(synthetic_month(1500, month="2025-04", seed=9, first_offset=10_000, record_prefix="A"))
    partial = [r for r in march if r.offset < 600]
    store, fresh = new_engine(tmp_path, "store.db"), new_engine(tmp_path, "fresh.db")
    load(store, "2025-03", partial)
    load(store, "2025-04", april)
    with pytest.raises(MonthConflictError, match="replace=True"):
        load(store, "2025-03", march)
    replaced = load(store, "2025-03", march, replace=True)
    assert replaced.replaced and replaced.inserted == len(march)
    load(fresh, "2025-03", march)
    load(fresh, "2025-04", april)
    assert roster(store) == roster(fresh)
    assert counts(store)["institution_events"] == counts(fresh)["institution_events"]
    assert load(store, "2025-03", march).noop


def test_backfilling_an_earlier_month_gives_the_in_order_roster(tmp_path):
    """Loading April before March ends with the roster of loading March, then April."""
    march = list(synthetic_month(2000, seed=4))
    april = list(synthetic_month(1000, month="2025-04", seed=4, first_offset=10_000, record_prefix="A"))
    backfilled, in_order = new_engine(tmp_path, "back.db"), new_engine(tmp_path, "order.db")
    load(backfilled, "2025-04", april)
    load(backfilled, "2025-03", march, chunk_size=300)
    load(in_order, "2025-03", march)
    load(in_order, "2025-04", april)
    assert roster(backfilled) == roster(in_order)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([(0, 5)], "outside the declared range"),
        ([(3, 1)], "partition not in the declared"),
        ([(0, 2), (0, 1)], "must increase"),
    ],
)
def test_positions_outside_the_declared_ranges_are_refused(engine, records, message):
    evs = [rec(p, o, make_event(uscc_for(i), registrar=Registrar.SHENPI)) for i, (p, o) in enumerate(records)]
    with pytest.raises(PositionError, match=message):
        load(engine, "2025-03", evs, ranges={0: (0, 5)})
    assert counts(engine)["institution_events"] == 0


def test_bad_arguments(engine):
    with pytest.raises(ValueError, match="YYYY-MM"):
        load(engine, "2025-3", [], ranges={})
    with pytest.raises(ValueError, match="not a range"):
        load(engine, "2025-03", [], ranges={0: (5, 4)})


def test_joined_ids_is_one_text_unless_an_id_would_split_wrongly():
    from sink.loader import joined_ids

    assert joined_ids(["a", "b", ""]) == "a\nb\n"
    assert joined_ids(["", ""]) == "\n"
    assert joined_ids(["a\nb", "c"]) is None  # PostgreSQL would split it into three
    assert joined_ids([""]) is None  # PostgreSQL splits '' into no element
    assert joined_ids([]) is None
