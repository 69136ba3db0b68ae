"""教育 托班 feed: the simulator's JSON Lines file read by the connector, reconciled to ground truth."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Batch, ExtractContext
from connectors.jiaoyu import JiaoyuConnector
from regsync.sources import for_simulator
from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import EventType, LegalForm, ProfitNature, RegistrationEvent
from simulators.jiaoyu_feed import JiaoyuFeed, feed_line
from simulators.world import World, WorldConfig, build_world

MONTH_ENDS = [datetime(2026, m, 1, tzinfo=UTC) for m in (2, 3, 4, 5, 6)]


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(WorldConfig(institutions_per_month=120))  # ~30 托班 reports


def run(connector: JiaoyuConnector, state: dict[str, Any], as_of: datetime, size: int = 500):
    batches = list(connector.batches(state, ExtractContext(as_of, "test", batch_size=size)))
    return batches, (batches[-1].state if batches else state)


def events(batches: list[Batch]) -> list[RegistrationEvent]:
    return [e for b in batches for e in b.events]


@pytest.mark.parametrize("torn_rate", [0.0, 1.0])
def test_month_by_month_emits_exactly_the_ground_truth(world: World, tmp_path: Path, torn_rate: float):
    sim = JiaoyuFeed(world, tmp_path, torn_rate=torn_rate)
    codec = AvroCodec(get_contract(REGISTRATION_EVENT).version(1).schema_str, 1)
    connector, state, seen = for_simulator(sim), {}, []
    for as_of in [*MONTH_ENDS, MONTH_ENDS[-1]]:  # the repeated publish completes a torn last line
        sim.publish_until(as_of)
        if torn_rate and sim.torn is not None:
            assert not sim.feed.read_bytes().endswith(b"\n")
        batches, state = run(connector, state, as_of, size=4)
        assert not [r for b in batches for r in b.invalid]  # a torn tail is never parsed
        seen += [e.event_id for e in events(batches)]
        trail = [c for b in batches for c in b.cursor_values]
        assert trail == sorted(trail)
        assert sum(b.read for b in batches) == sum(len(b.events) + len(b.invalid) for b in batches)
        truth = [t for t in sim.ground_truth() if t["childcare"]]
        assert sorted(seen) == sorted(t["event_id"] for t in truth)
        for event in events(batches):
            codec.encode(event.to_avro())
    assert len(seen) == len(set(seen)) >= 20
    assert state["offset"] == sim.feed.stat().st_size
    again, _ = run(connector, state, MONTH_ENDS[-1])
    assert events(again) == []


def test_events_carry_the_feed_facts(world: World, tmp_path: Path):
    sim = JiaoyuFeed(world, tmp_path, torn_rate=0.0)
    sim.publish_until(MONTH_ENDS[-1])
    batches, _ = run(for_simulator(sim), {}, MONTH_ENDS[-1])
    records = {r.record_id: r for r in world.records if r.registrar.value == "JIAOYU"}
    truth = {t["event_id"]: t for t in sim.ground_truth()}
    for event in events(batches):
        rec = records[event.lineage.source_record_id]
        inst = event.institution
        assert event.event_type is EventType.CHILDCARE_CLASS_ADDED
        assert event.event_date == rec.event_date
        assert (inst.uscc, inst.name, inst.address) == (
            rec.snapshot.uscc,
            rec.snapshot.name,
            rec.snapshot.address,
        )
        assert inst.capacity == rec.snapshot.capacity
        assert [f.value for f in inst.service_forms or ()] == list(rec.snapshot.service_forms)
        assert "托班" in inst.business_scope
        expected_form = {"12": LegalForm.PUBLIC_INSTITUTION, "52": LegalForm.PRIVATE_NON_ENTERPRISE}
        if inst.uscc[:2] in expected_form:
            assert inst.legal_form is expected_form[inst.uscc[:2]]
            assert inst.profit_nature is ProfitNature.NON_PROFIT
        if truth[event.event_id]["county_code"] and not truth[event.event_id]["faults"]:
            assert inst.county_code == truth[event.event_id]["county_code"]
        assert int(event.lineage.cursor_value or 0) > 0


def test_crash_mid_feed_resumes_without_duplicates(world: World, tmp_path: Path):
    sim = JiaoyuFeed(world, tmp_path, torn_rate=0.0)
    sim.publish_until(MONTH_ENDS[-1])
    full, _ = run(for_simulator(sim), {}, MONTH_ENDS[-1], size=3)
    all_ids = [e.event_id for e in events(full)]
    for crash_after in (0, len(full) // 2):
        kept = full[: crash_after + 1]
        resumed, _ = run(for_simulator(sim), kept[-1].state, MONTH_ENDS[-1], size=3)
        assert [e.event_id for e in events(kept)] + [e.event_id for e in events(resumed)] == all_ids


def test_bad_line_goes_to_invalid_and_reading_goes_on(world: World, tmp_path: Path):
    sim = JiaoyuFeed(world, tmp_path, torn_rate=0.0)
    sim.publish_until(MONTH_ENDS[0])
    rec = next(r for r in world.records if r.registrar.value == "JIAOYU")
    with sim.feed.open("a", encoding="utf-8") as handle:
        handle.write('{"seq": 99, "record_id": "JY9", "version": 1, "approved_date": \n')  # broken JSON
        handle.write(json.dumps({**feed_line(100, rec), "approved_date": "2026-02-30"}) + "\n")
        handle.write(json.dumps({**feed_line(101, rec), "record_id": "JY_OK"}, ensure_ascii=False) + "\n")
        handle.write(json.dumps({**feed_line(50, rec), "record_id": "JY_OLD"}, ensure_ascii=False) + "\n")
    batches, _ = run(for_simulator(sim), {}, MONTH_ENDS[0])
    invalid = [r for b in batches for r in b.invalid]
    assert len(invalid) == 3 and all("jiaoyu-feed byte" in r.reason for r in invalid)
    assert "day is out of range" in invalid[1].reason
    assert "seq 50 is not after the cursor 000000000101 (out of order)" in invalid[2].reason
    assert events(batches)[-1].lineage.source_record_id == "JY_OK"


def test_rewritten_shorter_feed_is_rescanned_by_sequence(world: World, tmp_path: Path):
    sim = JiaoyuFeed(world, tmp_path, torn_rate=0.0)
    sim.publish_until(MONTH_ENDS[-1])
    connector = for_simulator(sim)
    _, state = run(connector, {}, MONTH_ENDS[-1])
    lines = sim.feed.read_bytes().splitlines(keepends=True)
    sim.feed.write_bytes(b"".join(lines[-2:]))  # rotated: only the last two lines kept
    again, state = run(connector, state, MONTH_ENDS[-1])
    assert events(again) == [] and state["offset"] == sim.feed.stat().st_size


def test_feed_replaced_by_a_longer_one_is_read_whole(world: World, tmp_path: Path):
    """Issue 13 item 3: rotation is told by identity, not size, so no line before the old offset is lost."""
    sim = JiaoyuFeed(world, tmp_path, torn_rate=0.0)
    sim.publish_until(MONTH_ENDS[-1])
    connector = for_simulator(sim)
    lines = sim.feed.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 8
    old, new = lines[:4], lines[4:]
    sim.feed.write_bytes(b"".join(old))
    first, state = run(connector, {}, MONTH_ENDS[-1])
    assert len(events(first)) == 4
    rotated = sim.feed.with_name("feed.next")
    rotated.write_bytes(b"".join(new))  # the new file is longer than the old offset
    rotated.replace(sim.feed)
    again, _ = run(connector, state, MONTH_ENDS[-1])
    assert len(events(again)) == len(new), "lines before the old byte offset were skipped"


def test_dlq_copy_of_a_feed_line_is_masked(world: World, tmp_path: Path):
    """Issue 13 item 9: the raw feed line in the DLQ carries no resident ID or mobile number in full."""
    sim = JiaoyuFeed(world, tmp_path, torn_rate=0.0)
    sim.publish_until(MONTH_ENDS[0])
    rec = next(r for r in world.records if r.registrar.value == "JIAOYU")
    line = {**feed_line(100, rec), "approved_date": "bad", "legal_rep_id": "441802198601011234"}
    line["contact_phone"] = "13812345678"
    with sim.feed.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    batches, _ = run(for_simulator(sim), {}, MONTH_ENDS[0])
    (bad,) = [r for b in batches for r in b.invalid]
    assert b"441802198601011234" not in bad.raw and b"13812345678" not in bad.raw
    assert b"441802********1234" in bad.raw
