"""行政审批 SQL system: simulator + connector reconciled against the world's ground truth (SQLite)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connectors.base import Batch, ExtractContext
from connectors.shenpi import ShenpiConnector
from regsync.sources import for_simulator
from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import EventType, FieldChange, InstitutionStatus, LegalForm, ProfitNature, Registrar
from simulators.shenpi_db import REGISTRATION, ShenpiDb
from simulators.world import WorldConfig, build_world

MONTH_ENDS = [datetime(2026, month, 1, tzinfo=UTC) for month in range(2, 8)]
CODEC = AvroCodec(get_contract(REGISTRATION_EVENT).version(1).schema_str, 1)
GATE_FAULTS = {
    "bad_check_digit",
    "missing_name",
    "missing_address",
    "unknown_division",
    "abolished_division",
    "future_date",
    "bad_legal_rep_id",
}
FORMS = {
    "91": (LegalForm.ENTERPRISE, ProfitNature.FOR_PROFIT),
    "92": (LegalForm.INDIVIDUAL_BUSINESS, ProfitNature.FOR_PROFIT),
    "52": (LegalForm.PRIVATE_NON_ENTERPRISE, ProfitNature.NON_PROFIT),
}


@pytest.fixture(scope="module")
def world():
    return build_world(WorldConfig(institutions_per_month=60))


@pytest.fixture
def sim(world, tmp_path):
    simulator = ShenpiDb(world, tmp_path)
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
    spec = ShenpiConnector.spec
    assert (spec.name, spec.registrar, spec.key, spec.cursor_field) == (
        "shenpi",
        Registrar.SHENPI,
        "entity_id,version_no",
        "change_seq",
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
    records = {(r.record_id, str(r.version)): r for r in world.for_registrar(Registrar.SHENPI)}
    for event in events:
        line = childcare[event.event_id]
        assert event.event_type.value == line["event_type"]
        assert event.institution.uscc == line["uscc"]
        assert event.event_date.isoformat() == line["event_date"]
        if line["county_code"] is not None:
            assert event.institution.county_code == line["county_code"]
        assert (event.institution.legal_form, event.institution.profit_nature) == FORMS[line["uscc"][:2]]
        record = records[(event.lineage.source_record_id, event.lineage.source_version)]
        assert event.changed_fields == tuple(FieldChange(*change) for change in record.changed)
        assert event.institution.registered_capital == Decimal(record.snapshot.capital_wan)  # 元 → 万元
        assert event.institution.business_scope == record.snapshot.scope
        CODEC.encode(event.to_avro())  # fits the published Avro contract


def test_moves_carry_both_counties(sim, connector, world):
    batches, _ = replay(sim, connector)
    records = {(r.record_id, str(r.version)): r for r in world.for_registrar(Registrar.SHENPI)}
    moves = [e for e in events_of(batches) if e.event_type in (EventType.MOVED_OUT, EventType.MOVED_IN)]
    assert Counter(e.event_type for e in moves)[EventType.MOVED_IN] > 0
    for event in moves:
        record = records[(event.lineage.source_record_id, event.lineage.source_version)]
        assert event.jurisdiction is not None
        assert (event.jurisdiction.from_county_code, event.jurisdiction.to_county_code) == (
            record.moved_from,
            record.moved_to,
        )
        expected = (
            InstitutionStatus.MOVED_OUT
            if event.event_type is EventType.MOVED_OUT
            else InstitutionStatus.ACTIVE
        )
        assert event.institution.status is expected
        if event.event_type is EventType.MOVED_IN:
            assert event.institution.county_code == record.moved_to


def test_second_run_from_the_final_state_emits_nothing(sim, connector):
    _, state = replay(sim, connector)
    again, after = drain(connector, state, MONTH_ENDS[-1])
    assert again == []
    assert after == state


def test_rows_after_the_committed_mark_are_read_and_the_mark_row_is_not_repeated(sim, connector, world):
    records = world.for_registrar(Registrar.SHENPI)
    cut = records[len(records) // 2].surfaced_at
    sim.publish_until(cut)
    before, state = drain(connector, {}, cut)
    with sim.engine.connect() as conn:
        top = conn.execute(sa.select(sa.func.max(REGISTRATION.c.change_seq))).scalar_one()
    assert state["value"] == f"{top:012d}"  # zero-padded: text order is numeric order
    sim.publish_until(MONTH_ENDS[-1])
    after, _ = drain(connector, state, MONTH_ENDS[-1])
    seen = {e.event_id for e in events_of(before)}
    assert events_of(after)
    assert not seen & {e.event_id for e in events_of(after)}
    # ``>=`` semantics: a mark without its tie set re-reads the row at the mark itself.
    replayed, _ = drain(connector, {"value": state["value"], "ties": []}, MONTH_ENDS[-1])
    assert sum(b.read for b in replayed) == sum(b.read for b in after) + 1


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


def test_change_seq_follows_each_entitys_versions(sim):
    for as_of in MONTH_ENDS:
        sim.publish_until(as_of)
    with sim.engine.connect() as conn:
        rows = conn.execute(
            sa.select(REGISTRATION.c.entity_id, REGISTRATION.c.version_no).order_by(REGISTRATION.c.change_seq)
        ).all()
    last: dict[str, int] = {}
    for entity, version in rows:
        assert version == last.get(entity, 0) + 1
        last[entity] = version


def test_legal_person_ids_and_mobiles_are_masked(sim, connector):
    batches, _ = replay(sim, connector)
    with sim.engine.connect() as conn:
        query = sa.select(REGISTRATION.c.lp_cert_no, REGISTRATION.c.lp_mobile)
        secrets = {v for row in conn.execute(query) for v in row if v}
    text = json.dumps([e.to_avro() for e in events_of(batches)], ensure_ascii=False, default=str)
    assert secrets and not any(secret in text for secret in secrets)
    for event in events_of(batches):
        rep = event.institution.legal_representative
        assert rep.id_number_masked.count("*") == 8
        assert rep.phone_masked.count("*") == 4


def test_faulty_records_are_emitted_for_the_gate(sim, connector):
    batches, _ = replay(sim, connector)
    truth = sim.ground_truth()
    faulty = {line["event_id"] for line in truth if GATE_FAULTS & set(line["faults"])}
    assert faulty
    assert faulty <= {event.event_id for event in events_of(batches)}
    bad_ids = {line["event_id"] for line in truth if "bad_legal_rep_id" in line["faults"]}
    flagged = {e.event_id for e in events_of(batches) if e.institution.legal_representative.id_valid is False}
    assert bad_ids and bad_ids <= flagged


def test_rows_that_cannot_become_events_go_to_invalid_with_a_reason(sim, connector):
    sim.publish_until(MONTH_ENDS[0])
    _, state = drain(connector, {}, MONTH_ENDS[0])
    with sim.engine.begin() as conn:
        row = dict(conn.execute(sa.select(REGISTRATION).limit(1)).mappings().one())
        del row["change_seq"]
        conn.execute(REGISTRATION.insert(), [{**row, "entity_id": "BADTYPE", "biz_type": "XX"}])
        conn.execute(REGISTRATION.insert(), [{**row, "entity_id": "BADSTATUS", "status_code": "99"}])
        conn.execute(REGISTRATION.insert(), [{**row, "entity_id": "BADJSON"}])
        conn.execute(
            sa.text("UPDATE approval_registration SET scope_json = '[托育' WHERE entity_id = 'BADJSON'")
        )
    batches, final = drain(connector, state, MONTH_ENDS[0])
    invalid = {record.source_record_id: record for batch in batches for record in batch.invalid}
    assert set(invalid) == {"BADTYPE", "BADSTATUS", "BADJSON"}
    assert "'XX'" in invalid["BADTYPE"].reason and "BADTYPE" in invalid["BADTYPE"].reason
    assert "'99'" in invalid["BADSTATUS"].reason
    assert "scope_json" in invalid["BADJSON"].reason
    assert row["lp_cert_no"] not in invalid["BADTYPE"].raw.decode()
    assert json.loads(invalid["BADTYPE"].raw)["entity_name"] == row["entity_name"]
    assert not events_of(batches)
    assert drain(connector, final, MONTH_ENDS[0])[0] == []  # the cursor moved past them


def test_restarted_simulator_does_not_write_versions_twice(world, tmp_path):
    first = ShenpiDb(world, tmp_path)
    shown = first.publish_until(MONTH_ENDS[1])
    first.close()
    second = ShenpiDb(world, tmp_path)
    try:
        assert shown > 0
        assert second.publish_until(MONTH_ENDS[1]) == 0
        assert len(second.ground_truth()) == shown
    finally:
        second.close()
