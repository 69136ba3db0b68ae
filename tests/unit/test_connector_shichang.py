"""市场监管 exchange files: the simulator's drop folder read by the connector, reconciled to ground truth."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Batch, ExtractContext, FatalSourceError
from connectors.shichang import (
    CANDIDATE_MARKS,
    ENCODING,
    ShichangConnector,
    is_candidate,
    row_is_childcare,
)
from regsync.sources import for_simulator
from schemas import childcare
from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import EventType, RegistrationEvent
from schemas.resident_id import parse_resident_id
from simulators.shichang_files import (
    BEIJING,
    FileQuirks,
    ShichangFiles,
    as_row,
    exchange_instant,
    write_bulk_day,
    write_day_file,
)
from simulators.world import World, build_world

MONTH_ENDS = [datetime(2026, m, 1, tzinfo=UTC) for m in (2, 3, 4, 5, 6, 7)]


@pytest.fixture(scope="module")
def world() -> World:
    return build_world()


@pytest.fixture
def sim(world: World, tmp_path: Path) -> ShichangFiles:
    return ShichangFiles(world, tmp_path / "shichang")


def run(connector: ShichangConnector, state: dict[str, Any], as_of: datetime, size: int = 500):
    """All batches of one run and the state after the last (what the pipeline would commit)."""
    batches = list(connector.batches(state, ExtractContext(as_of, "test", batch_size=size)))
    return batches, (batches[-1].state if batches else state)


def events(batches: list[Batch]) -> list[RegistrationEvent]:
    return [e for b in batches for e in b.events]


def childcare_truth(sim: ShichangFiles) -> dict[str, dict[str, Any]]:
    return {t["event_id"]: t for t in sim.ground_truth() if t["childcare"]}


@pytest.fixture
def quirky(world: World, tmp_path: Path) -> ShichangFiles:
    """Quirks at 20 % each, so some quirky days also carry childcare rows."""
    return ShichangFiles(world, tmp_path / "quirky", FileQuirks(late=0.2, resend=0.2, truncated=0.2))


def plan_with(sim: ShichangFiles, quirk: str, **extra: Any):
    """The first day (Jan–Jun) with childcare rows whose delivery has ``quirk`` (the plan is seeded)."""
    for offset in range(181):
        plan = sim.plan(date(2026, 1, 1) + timedelta(days=offset))
        busy = any(r.childcare for r in sim.by_day.get(plan.day, []))
        if busy and plan.quirk == quirk and all(getattr(plan, k) == v for k, v in extra.items()):
            return plan
    raise AssertionError(f"no {quirk} day in the seeded plan")


@pytest.mark.parametrize("simulator", ["sim", "quirky"])
def test_month_by_month_emits_exactly_the_ground_truth(simulator: str, request: pytest.FixtureRequest):
    sim: ShichangFiles = request.getfixturevalue(simulator)
    codec = AvroCodec(get_contract(REGISTRATION_EVENT).version(1).schema_str, 1)
    connector, state = for_simulator(sim), {}
    seen: list[str] = []
    scanned = 0
    for as_of in [*MONTH_ENDS, MONTH_ENDS[-1] + timedelta(days=3)]:  # the last run completes late files
        sim.publish_until(as_of)
        batches, state = run(connector, state, as_of, size=7)
        scanned += connector.report.rows_scanned
        seen += [e.event_id for e in events(batches)]
        truth = childcare_truth(sim)
        assert sorted(seen) == sorted(truth), as_of
        trail = [c for b in batches for c in b.cursor_values]
        assert trail == sorted(trail)  # cursor values move forward within a run
        for b in batches:
            assert b.read == len(b.events) + len(b.invalid) + b.not_childcare
        for event in events(batches):
            line = truth[event.event_id]
            assert (event.lineage.source_record_id, event.lineage.source_version) == (
                line["record_id"],
                str(line["version"]),
            )
            assert event.event_type.value == line["event_type"]
            assert event.institution.uscc == line["uscc"]
            assert event.lineage.cursor_value.startswith(line["file"] + ":")
            codec.encode(event.to_avro())  # every event fits the published contract
    assert len(seen) == len(set(seen)) > 40
    assert scanned == len(sim.ground_truth())  # every row of every file taken was looked at once
    assert {t["record_id"][:3] for t in sim.ground_truth() if not t["childcare"]} >= {"SCF", "SCS"}

    again, _ = run(connector, state, MONTH_ENDS[-1] + timedelta(days=4))
    assert events(again) == []
    assert connector.report.taken == []


def test_events_carry_the_source_facts_masked(sim: ShichangFiles, world: World):
    sim.publish_until(MONTH_ENDS[-1])
    batches, _ = run(for_simulator(sim), {}, MONTH_ENDS[-1])
    records = {(r.record_id, str(r.version)): r for r in sim.world.records}
    truth = childcare_truth(sim)
    for event in events(batches):
        rec = records[(event.lineage.source_record_id, event.lineage.source_version)]
        inst, rep = event.institution, event.institution.legal_representative
        assert (inst.name, inst.address, inst.business_scope) == (
            rec.snapshot.name,
            rec.snapshot.address,
            rec.snapshot.scope,
        )
        assert rep is not None and rep.name == rec.snapshot.legal_rep.name
        assert rep.id_number_masked != rec.snapshot.legal_rep.id_number
        assert rep.id_number_masked[:6] == rec.snapshot.legal_rep.id_number[:6]
        assert "*" in rep.id_number_masked and "*" in (rep.phone_masked or "")
        assert (
            rep.id_valid
            is parse_resident_id(rec.snapshot.legal_rep.id_number, today=MONTH_ENDS[-1].date()).is_valid
        )
        if "bad_legal_rep_id" in truth[event.event_id]["faults"]:
            assert rep.id_valid is False
        if not {"unknown_division", "abolished_division"} & set(truth[event.event_id]["faults"]):
            assert inst.county_code == truth[event.event_id]["county_code"]
        if event.event_type in (EventType.MOVED_IN, EventType.MOVED_OUT):
            assert event.jurisdiction is not None
            assert (event.jurisdiction.from_county_code, event.jurisdiction.to_county_code) == (
                rec.moved_from,
                rec.moved_to,
            )


def test_scope_added_and_removed_events(sim: ShichangFiles):
    sim.publish_until(MONTH_ENDS[-1])
    batches, _ = run(for_simulator(sim), {}, MONTH_ENDS[-1])
    by_type: dict[EventType, list[RegistrationEvent]] = {}
    for event in events(batches):
        by_type.setdefault(event.event_type, []).append(event)
    added, removed = by_type[EventType.SCOPE_ADDED_CHILDCARE], by_type[EventType.SCOPE_REMOVED_CHILDCARE]
    assert len(added) == 3 and len(removed) == 1
    for event in added:
        (change,) = event.changed_fields
        assert (
            change.field == "business_scope"
            and "托育" in (change.new or "")
            and "托育" not in (change.old or "")
        )
    gone = removed[0]
    assert not childcare.classify(gone.institution.business_scope).is_childcare  # passed all the same
    assert "托育" in (gone.changed_fields[0].old or "")
    emitted = {(e.lineage.source_record_id, e.lineage.source_version) for e in events(batches)}
    # the 早教 look-alike before it added 托育, and the change after 托育 was dropped, are not childcare
    assert ("SCS000001", "1") not in emitted and ("SCS000900", "3") not in emitted
    assert {("SCS000001", "2"), ("SCS000900", "1"), ("SCS000900", "2")} <= emitted


def test_gb18030_text_round_trips(sim: ShichangFiles):
    sim.publish_until(MONTH_ENDS[-1])
    batches, _ = run(for_simulator(sim), {}, MONTH_ENDS[-1])
    rare = [e for e in events(batches) if e.institution.legal_representative.name == "刘䶮"]
    assert [e.lineage.source_version for e in rare] == ["1", "2"]
    raw = (sim.inbox / rare[0].lineage.cursor_value.split(":")[0]).read_bytes()
    assert "刘䶮".encode(ENCODING) in raw and "托育服务".encode(ENCODING) in raw
    assert "托育服务".encode() not in raw  # not UTF-8
    with pytest.raises(UnicodeDecodeError):
        raw.decode("gbk")  # why the connector decodes gb18030: 䶮 is outside GBK


def test_truncated_file_is_not_half_read_then_taken_once_complete(quirky: ShichangFiles):
    sim = quirky
    connector, state = for_simulator(sim), {}
    plans = [plan_with(sim, "truncated", marker_with_truncation=flag) for flag in (False, True)]
    plans.sort(key=lambda plan: plan.day)
    for plan in plans:
        reason = "checksum_mismatch" if plan.marker_with_truncation else "no_marker"
        sim.publish_until(plan.delivered_at)
        batches, state = run(connector, state, plan.delivered_at)
        assert connector.report.waiting == {plan.name: reason}
        assert plan.name not in state["files"]
        assert not any(c.startswith(plan.name) for b in batches for c in b.cursor_values)
        assert not any(t["file"] == plan.name for t in sim.ground_truth())  # truth comes with the whole file

        sim.publish_until(plan.followup_at)
        batches, state = run(connector, state, plan.followup_at)
        assert plan.name in connector.report.taken and plan.name in state["files"]
        expected = {t["event_id"] for t in childcare_truth(sim).values() if t["file"] == plan.name}
        got = {e.event_id for e in events(batches) if e.lineage.cursor_value.startswith(plan.name)}
        assert got == expected and expected


def test_resent_file_is_skipped_and_counted(quirky: ShichangFiles):
    sim = quirky
    plan = plan_with(sim, "resend")
    connector = for_simulator(sim)
    sim.publish_until(plan.followup_at)
    resend = plan.name.replace(".csv", "_resend.csv")
    assert (sim.inbox / resend).read_bytes() == (sim.inbox / plan.name).read_bytes()
    batches, state = run(connector, {}, plan.followup_at)
    assert connector.report.duplicates[resend] == plan.name
    assert state["duplicates"][resend] == state["files"][plan.name]
    assert resend not in connector.report.taken
    ids = [e.event_id for e in events(batches)]
    assert len(ids) == len(set(ids))
    assert {t["event_id"] for t in childcare_truth(sim).values() if t["file"] == plan.name} <= set(ids)
    run(connector, state, plan.followup_at)
    assert connector.report.duplicates == {}  # recorded once, not re-hashed on every run


def test_late_file_is_taken_after_newer_files(quirky: ShichangFiles):
    sim = quirky
    plan = plan_with(sim, "late")
    connector = for_simulator(sim)
    newer = exchange_instant(plan.day + timedelta(days=1))
    assert newer < plan.delivered_at
    sim.publish_until(newer)
    _, state = run(connector, {}, newer)
    next_day = f"SCJG_{plan.day + timedelta(days=1):%Y%m%d}.csv"
    assert next_day in state["files"] and plan.name not in state["files"]

    sim.publish_until(plan.delivered_at)
    batches, state = run(connector, state, plan.delivered_at)
    assert plan.name in connector.report.taken
    expected = {t["event_id"] for t in childcare_truth(sim).values() if t["file"] == plan.name}
    assert expected and expected <= {e.event_id for e in events(batches)}


def test_crash_mid_file_resumes_without_duplicates(tmp_path: Path):
    first = write_bulk_day(tmp_path, date(2026, 1, 5), 3_000, filler_per_childcare=20)
    write_bulk_day(tmp_path, date(2026, 1, 6), 1_000, filler_per_childcare=20)
    connector, as_of = ShichangConnector(tmp_path), datetime(2026, 1, 7, tzinfo=UTC)
    full, _ = run(connector, {}, as_of, size=10)
    all_ids = [e.event_id for e in events(full)]
    assert len(all_ids) == len(set(all_ids)) == first.childcare_rows + 47

    for crash_after in (0, 5, len(full) - 2):
        kept = full[: crash_after + 1]  # acknowledged before the crash; later batches were lost
        state = kept[-1].state
        resumed, final = run(ShichangConnector(tmp_path), state, as_of, size=10)
        replayed = [e.event_id for e in events(kept)] + [e.event_id for e in events(resumed)]
        assert replayed == all_ids, crash_after
        assert set(final["files"]) == {first.path.name, "SCJG_20260106.csv"} and "current" not in final
    mid = full[3].state["current"]
    assert mid["file"] == first.path.name and 0 < mid["rows"] < 3_000
    assert sum(b.read for b in full) == 4_000
    assert sum(b.not_childcare for b in full) == 4_000 - len(all_ids)


def test_pinyin_header_reads_the_same(world: World, tmp_path: Path):
    zh = ShichangFiles(world, tmp_path / "zh")
    py = ShichangFiles(world, tmp_path / "py", FileQuirks(header="pinyin"))
    as_of = MONTH_ENDS[1]
    ids = []
    for sim in (zh, py):
        sim.publish_until(as_of)
        batches, _ = run(for_simulator(sim), {}, as_of)
        ids.append(sorted(e.event_id for e in events(batches)))
    assert ids[0] == ids[1] and ids[0]
    assert (py.inbox / "SCJG_20260105.csv").read_bytes().startswith(b"JLBH,BBH,TYSHXYDM")


def row(**fields: str) -> list[str]:
    base = {
        "record_id": "SCT000001",
        "version": "1",
        "uscc": "91441802MA4W000000",
        "name": "清远测试托育服务有限公司",
        "entity_type": "企业",
        "address": "广东省清远市清城区育才路1号",
        "division": "441802",
        "scope": "托育服务",
        "industry": "8020",
        "rep_name": "张三",
        "rep_id": "441802198601011234",
        "rep_phone": "13812345678",
        "capital": "30.00",
        "change_code": "01",
        "approved": "2026-01-05",
    }
    return as_row(**{**base, **fields})


def test_unparseable_rows_go_to_invalid_with_a_reason(tmp_path: Path):
    rows = [
        row(),
        row(record_id="SCT000002", approved="2026-13-45"),
        row(record_id="SCT000003", change_code="09"),
        row(record_id="SCT000004", capital="三十万"),
        row(record_id="SCT000005", name="清远测试五金店", scope="五金销售", industry="5174", approved="bad"),
        [*row(record_id="SCT000006")[:10]],  # a short row: 10 of 20 fields
    ]
    write_day_file(tmp_path / "SCJG_20260105.csv", rows, exchange_instant(date(2026, 1, 5)))
    batches, _ = run(ShichangConnector(tmp_path), {}, datetime(2026, 1, 6, tzinfo=UTC))
    assert [e.lineage.source_record_id for e in events(batches)] == ["SCT000001"]
    invalid = {r.source_record_id: r for b in batches for r in b.invalid}
    assert set(invalid) == {"SCT000002", "SCT000003", "SCT000004", "SCT000006"}  # 0005 is not childcare
    assert "unknown change type code '09'" in invalid["SCT000003"].reason
    assert "expected 20 fields, found 10" in invalid["SCT000006"].reason
    for record in invalid.values():
        assert b"441802198601011234" not in record.raw and b"13812345678" not in record.raw
        assert "SCJG_20260105.csv:" in record.reason
    assert "清远测试托育服务有限公司" in invalid["SCT000002"].raw.decode()


def test_complete_file_breaking_the_format_fails_loudly_after_the_others(tmp_path: Path):
    good = write_day_file(tmp_path / "SCJG_20260105.csv", [row()], exchange_instant(date(2026, 1, 5)))
    bad = tmp_path / "SCJG_20260106.csv"
    write_day_file(bad, [row(record_id="SCT000009")], exchange_instant(date(2026, 1, 6)))
    marker = bad.with_name(bad.name + ".ok")
    marker.write_text(marker.read_text().replace("rows=1", "rows=2"))
    connector = ShichangConnector(tmp_path)
    seen: list[Batch] = []
    with pytest.raises(FatalSourceError, match="row_count_mismatch"):
        seen.extend(connector.batches({}, ExtractContext(datetime(2026, 1, 7, tzinfo=UTC), "t")))
    assert seen and seen[-1].state["files"] == {"SCJG_20260105.csv": good}


def test_reissued_file_under_the_same_name_is_taken_again(tmp_path: Path):
    path = tmp_path / "SCJG_20260105.csv"
    write_day_file(path, [row()], exchange_instant(date(2026, 1, 5)))
    connector, as_of = ShichangConnector(tmp_path), datetime(2026, 1, 6, tzinfo=UTC)
    _, state = run(connector, {}, as_of)
    write_day_file(path, [row(), row(record_id="SCT000002")], exchange_instant(date(2026, 1, 5)))
    batches, state = run(connector, state, as_of)
    assert [e.lineage.source_record_id for e in events(batches)] == ["SCT000001", "SCT000002"]
    assert state["files"][path.name] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_prefilter_never_hides_an_include_term():
    samples = [t.label for t in childcare.INCLUDE_TERMS] + ["0-3岁婴幼儿看护", "三岁以下婴幼儿"]
    for text in samples:
        assert is_candidate(text), text
        assert any(mark in text for mark in CANDIDATE_MARKS), text
    assert is_candidate("行业8020") and not is_candidate("学前教育；早期教育咨询")


@pytest.mark.parametrize(
    "scope", ["托育服务", "学生托管服务；午托、晚托", "全日托", "早期教育咨询", "餐饮服务", ""]
)
@pytest.mark.parametrize("name", ["清远阳光托育中心", "清远阳光早教中心", "清远阳光商贸有限公司", ""])
@pytest.mark.parametrize("industry", ["", "8020", "O8020", "5211"])
def test_fast_childcare_decision_equals_the_classifier(scope: str, name: str, industry: str):
    assert row_is_childcare(scope, name, industry) is childcare.classify(scope, name, industry).is_childcare


def test_files_are_delivered_on_the_exchange_schedule(sim: ShichangFiles):
    as_of = datetime(2026, 1, 10, 2, 0, tzinfo=BEIJING)
    sim.publish_until(as_of)
    names = sorted(p.name for p in sim.inbox.glob("*.csv"))
    assert "SCJG_20260109.csv" in names and "SCJG_20260110.csv" not in names
    for path in sim.inbox.glob("*.csv"):
        marker = path.with_name(path.name + ".ok")
        if marker.exists() and path.name in names:
            text = marker.read_text()
            assert f"file={path.name}" in text and "encoding=GB18030" in text


def test_the_simulator_declares_the_exchange_format_itself():
    """Issue 14 §3: the simulator owns the format; a connector drifting from it fails here and above."""
    import connectors.shichang as reader
    import simulators.shichang_files as exchange

    assert exchange.COLUMNS == reader.COLUMNS
    assert (exchange.ENCODING, exchange.MARKER_SUFFIX) == (reader.ENCODING, reader.MARKER_SUFFIX)
    assert exchange.COLUMNS is not reader.COLUMNS
