"""编制 SQL system: simulator + connector reconciled against the world's ground truth (SQLite)."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connectors.base import Batch, ExtractContext
from connectors.bianzhi import BianzhiConnector
from regsync.sources import for_simulator
from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import EventType, FieldChange, InstitutionStatus, LegalForm, Registrar
from simulators.bianzhi_db import DJLS, BianzhiDb, gxsj_of
from simulators.world import WorldConfig, build_world

MONTH_ENDS = [datetime(2026, month, 1, tzinfo=UTC) for month in range(2, 8)]
CODEC = AvroCodec(get_contract(REGISTRATION_EVENT).version(1).schema_str, 1)
GATE_FAULTS = {
    "bad_check_digit",
    "missing_name",
    "missing_address",
    "unknown_division",
    "abolished_division",
    "prefix_mismatch",
    "future_date",
    "bad_legal_rep_id",
}


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(institutions_per_month=60))


@pytest.fixture
def sim(world, tmp_path):
    simulator = BianzhiDb(world, tmp_path)
    yield simulator
    simulator.close()


@pytest.fixture
def connector(sim):
    conn = for_simulator(sim)
    yield conn
    conn.close()


def drain(connector, state, as_of, batch_size=4):
    """Run the connector to the end, committing each batch's state as the pipeline would."""
    batches = list(connector.batches(state, ExtractContext(as_of, "test", batch_size)))
    return batches, (batches[-1].state if batches else state)


def replay(sim, connector, batch_size=4):
    """Publish month by month and extract after each month; every batch, in order."""
    state: dict = {}
    batches: list[Batch] = []
    for as_of in MONTH_ENDS:
        sim.publish_until(as_of)
        more, state = drain(connector, state, as_of, batch_size)
        batches += more
    return batches, state


def events_of(batches):
    return [event for batch in batches for event in batch.events]


def test_spec_is_declared_as_data():
    spec = BianzhiConnector.spec
    assert (spec.name, spec.registrar, spec.key, spec.cursor_field) == (
        "bianzhi",
        Registrar.BIANZHI,
        "jgid,bbh",
        "gxsj",
    )


@pytest.mark.parametrize("batch_size", [1, 4, 500])
def test_emitted_events_equal_the_childcare_ground_truth(sim, connector, world, batch_size):
    batches, _ = replay(sim, connector, batch_size)
    events = events_of(batches)
    truth = sim.ground_truth()
    childcare = {line["event_id"]: line for line in truth if line["childcare"]}
    ids = [event.event_id for event in events]
    assert len(ids) == len(set(ids)), "duplicates"
    assert set(ids) == set(childcare)
    assert sum(b.not_childcare for b in batches) == sum(1 for line in truth if not line["childcare"]) > 0
    assert all(not b.invalid for b in batches)
    assert all(b.read == len(b.events) + b.not_childcare + len(b.invalid) for b in batches)
    assert all(0 < b.read <= batch_size for b in batches)
    records = {(r.record_id, str(r.version)): r for r in world.for_registrar(Registrar.BIANZHI)}
    for event in events:
        line = childcare[event.event_id]
        assert event.event_type.value == line["event_type"]
        assert event.institution.uscc == line["uscc"]
        assert event.event_date.isoformat() == line["event_date"]
        assert event.institution.legal_form is LegalForm.PUBLIC_INSTITUTION
        if line["county_code"] is not None:
            assert event.institution.county_code == line["county_code"]
        record = records[(event.lineage.source_record_id, event.lineage.source_version)]
        assert event.changed_fields == tuple(FieldChange(*change) for change in record.changed)
        assert event.institution.registered_capital == Decimal(record.snapshot.capital_wan)
        CODEC.encode(event.to_avro())  # fits the published Avro contract


def test_second_run_from_the_final_state_emits_nothing(sim, connector):
    _, state = replay(sim, connector)
    again, after = drain(connector, state, MONTH_ENDS[-1])
    assert again == []
    assert after == state


def test_row_arriving_later_with_the_committed_gxsj_is_still_read(sim, connector, world):
    records = world.for_registrar(Registrar.BIANZHI)
    first, late = next(
        (a, b)
        for a, b in itertools.pairwise(records)
        if gxsj_of(a.surfaced_at) == gxsj_of(b.surfaced_at) and a.surfaced_at < b.surfaced_at
    )
    sim.publish_until(first.surfaced_at)
    before, state = drain(connector, {}, first.surfaced_at)
    assert state["value"] == f"{gxsj_of(first.surfaced_at):%Y-%m-%d %H:%M:%S}"
    assert f"{first.record_id}/{first.version}" in state["ties"]
    sim.publish_until(late.surfaced_at)
    after, _ = drain(connector, state, late.surfaced_at)
    new = {event.lineage.source_record_id: event for event in events_of(after)}
    assert late.record_id in new
    assert new[late.record_id].lineage.cursor_value == state["value"]  # a tie at the committed mark
    assert not {e.event_id for e in events_of(before)} & {e.event_id for e in events_of(after)}


def test_restart_from_the_previous_commit_re_emits_exactly_the_lost_batch(sim, connector):
    """Crash after publishing batch k but before committing its cursor: the rerun yields batch k again."""
    state: dict = {}
    checked = 0
    for as_of in MONTH_ENDS:
        sim.publish_until(as_of)
        for batch in connector.batches(state, ExtractContext(as_of, "test", 3)):
            rerun = next(connector.batches(state, ExtractContext(as_of, "rerun", 3)))
            assert [e.event_id for e in rerun.events] == [e.event_id for e in batch.events]
            assert rerun.state == batch.state
            assert (rerun.read, rerun.not_childcare) == (batch.read, batch.not_childcare)
            state = batch.state  # the commit point
            checked += 1
    assert checked > 10


def test_legal_representative_ids_and_phones_are_masked(sim, connector):
    batches, _ = replay(sim, connector)
    with sim.engine.connect() as conn:
        secrets = {v for row in conn.execute(sa.select(DJLS.c.fddbrzjhm, DJLS.c.lxdh)) for v in row if v}
    text = json.dumps([e.to_avro() for e in events_of(batches)], ensure_ascii=False, default=str)
    assert secrets and not any(secret in text for secret in secrets)
    for event in events_of(batches):
        rep = event.institution.legal_representative
        assert rep.id_number_masked.count("*") == 8
        assert rep.phone_masked.count("*") == 4


def test_bad_legal_rep_ids_are_flagged_not_dropped(sim, connector):
    batches, _ = replay(sim, connector)
    truth = {line["event_id"]: line for line in sim.ground_truth()}
    valid = Counter(
        (
            event.institution.legal_representative.id_valid,
            "bad_legal_rep_id" in truth[event.event_id]["faults"],
        )
        for event in events_of(batches)
    )
    assert valid[(False, True)] > 0
    assert valid[(True, True)] == 0


def test_faulty_records_are_emitted_for_the_gate(sim, connector):
    batches, _ = replay(sim, connector)
    faulty = {line["event_id"] for line in sim.ground_truth() if GATE_FAULTS & set(line["faults"])}
    assert faulty
    assert faulty <= {event.event_id for event in events_of(batches)}


def test_soft_delete_means_deregistered_whatever_bglx_says(sim, connector):
    batches, _ = replay(sim, connector)
    with sim.engine.connect() as conn:
        deleted = conn.execute(
            sa.select(DJLS.c.jgid, DJLS.c.bbh, DJLS.c.bglx).where(DJLS.c.scbz == "1")
        ).all()
    assert {bglx for _, _, bglx in deleted} > {"03"}  # some carry the previous version's code
    by_key = {(e.lineage.source_record_id, e.lineage.source_version): e for e in events_of(batches)}
    for jgid, bbh, _ in deleted:
        event = by_key[(jgid, str(bbh))]
        assert event.event_type is EventType.DEREGISTERED
        assert event.institution.status is InstitutionStatus.DEREGISTERED


def test_kindergartens_with_tuoban_are_childcare_and_lookalikes_are_not(sim, connector):
    batches, _ = replay(sim, connector)
    with sim.engine.connect() as conn:
        kinds = dict(conn.execute(sa.select(DJLS.c.jgid, DJLS.c.jglb)).all())
    emitted = {e.lineage.source_record_id: e for e in events_of(batches)}
    kindergartens = [jgid for jgid, kind in kinds.items() if kind == "02"]
    assert kindergartens
    for jgid in kindergartens:
        assert emitted[jgid].institution.business_scope.endswith("托班")
    lookalikes = [jgid for jgid, kind in kinds.items() if kind in ("03", "09")]
    assert lookalikes
    assert not set(lookalikes) & set(emitted)


def test_rows_that_cannot_become_events_go_to_invalid_with_a_reason(sim, connector):
    sim.publish_until(MONTH_ENDS[0])
    _, state = drain(connector, {}, MONTH_ENDS[0])
    with sim.engine.begin() as conn:
        row = dict(conn.execute(sa.select(DJLS).where(DJLS.c.ywfw.like("%托育%")).limit(1)).mappings().one())
        late = gxsj_of(MONTH_ENDS[1])
        conn.execute(DJLS.insert(), [{**row, "jgid": "BADCODE", "bglx": "99", "gxsj": late}])
        conn.execute(DJLS.insert(), [{**row, "jgid": "BADDATE", "hzrq": "20261341", "gxsj": late}])
    batches, final = drain(connector, state, MONTH_ENDS[1])
    invalid = {record.source_record_id: record for batch in batches for record in batch.invalid}
    assert set(invalid) == {"BADCODE", "BADDATE"}
    assert "'99'" in invalid["BADCODE"].reason and "BADCODE" in invalid["BADCODE"].reason
    assert "BADDATE" in invalid["BADDATE"].reason
    raw = json.loads(invalid["BADCODE"].raw)
    assert raw["jgmc"] == row["jgmc"]
    assert row["fddbrzjhm"] not in invalid["BADCODE"].raw.decode()
    assert not [e for e in events_of(batches) if e.lineage.source_record_id.startswith("BAD")]
    assert drain(connector, final, MONTH_ENDS[1])[0] == []  # the cursor moved past them


def test_restarted_simulator_does_not_write_versions_twice(world, tmp_path):
    first = BianzhiDb(world, tmp_path)
    shown = first.publish_until(MONTH_ENDS[1])
    first.close()
    second = BianzhiDb(world, tmp_path)
    try:
        assert shown > 0
        assert second.publish_until(MONTH_ENDS[1]) == 0
        assert len(second.ground_truth()) == shown
    finally:
        second.close()
