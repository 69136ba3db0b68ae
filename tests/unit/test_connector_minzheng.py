"""The 民政 API connector against the real (local) HTTP simulator: completeness, cursor, retries, paging.

The server is real (a ThreadingHTTPServer on loopback) and counts what it sees, so retries are proven
server-side. Retry waits are made tiny through the connector's constructor, except where the server's
rate-limit window must really pass (0.1 s). No Kafka here: a tiny ``Pipeline`` plays the composition
root, "publishing" each batch and only then committing its state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.base import Batch, ExtractContext, FatalSourceError, RetriableSourceError
from connectors.minzheng import MinzhengConnector
from regsync.sources import for_simulator
from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, get_contract
from schemas.events import (
    CountyResolutionMethod,
    EventType,
    LegalForm,
    Registrar,
    RegistrationEvent,
    make_event_id,
)
from schemas.resident_id import parse_resident_id
from simulators.minzheng_api import API_PATH, ApiQuirks, MinzhengApiSimulator, render, update_time
from simulators.world import Fault, SourceRecord, WorldConfig, build_world

CONFIG = WorldConfig(institutions_per_month=120, prefectures=("441800",))
MONTH_ENDS = [datetime(2026, m, 1, tzinfo=UTC) for m in range(2, 13)]  # as-of: start of the next month
END = MONTH_ENDS[-1]
LATE = datetime(2027, 6, 1, tzinfo=UTC)  # an as-of past the rows injected after END (the end bound)
FAST = {"max_attempts": 5, "backoff_initial": 0.001, "backoff_max": 0.004, "jitter": 0.001, "timeout": 5.0}


@dataclass
class Pipeline:
    """The composition root's part: take each batch, "publish" it, then commit its state."""

    connector: MinzhengConnector
    state: dict[str, Any] = field(default_factory=dict)
    events: list[RegistrationEvent] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)

    def run(self, as_of: datetime = END, batch_size: int = 10) -> list[Batch]:
        ctx = ExtractContext(extracted_at=as_of, run_id=f"test-{as_of:%Y%m%d}", batch_size=batch_size)
        new: list[Batch] = []
        for batch in self.connector.batches(self.state, ctx):
            new.append(batch)
            self.batches.append(batch)
            self.events.extend(batch.events)  # acknowledged by the broker…
            self.state = batch.state  # …so the cursor may move
        return new


def childcare_ids(truth: list[dict[str, Any]]) -> list[str]:
    return sorted(t["event_id"] for t in truth if t["childcare"])


def ids(events: list[RegistrationEvent]) -> list[str]:
    return sorted(e.event_id for e in events)


def sort_key(line: dict[str, Any]) -> tuple[str, str, int]:
    """A truth line's position in the API's order."""
    return update_time(datetime.fromisoformat(line["surfaced_at"])), line["record_id"], line["version"]


def all_records(sim: MinzhengApiSimulator) -> list[SourceRecord]:
    return [*sim.world.for_registrar(Registrar.MINZHENG), *sim.extra]


def clone(record: SourceRecord, record_id: str, surfaced_at: datetime) -> SourceRecord:
    """Another institution's first version, committed at ``surfaced_at`` (a late or concurrent writer)."""
    return replace(record, record_id=record_id, version=1, surfaced_at=surfaced_at, childcare=True, faults=())


@pytest.fixture(scope="module")
def world():
    return build_world(CONFIG)


@pytest.fixture
def sim(world, tmp_path):
    with MinzhengApiSimulator(world, tmp_path) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def replay(world, tmp_path_factory):
    """The month-by-month replay, done once: publish a month, run the connector from committed state."""
    with MinzhengApiSimulator(world, tmp_path_factory.mktemp("minzheng")) as simulator:
        pipeline = Pipeline(for_simulator(simulator, **FAST))
        months = []
        for as_of in MONTH_ENDS:
            seen = len(simulator.ground_truth())
            simulator.publish_until(as_of)
            new_truth = simulator.ground_truth()[seen:]
            months.append((as_of, new_truth, pipeline.run(as_of)))
        yield simulator, pipeline, months


# ---------------------------------------------------------------------------------------------------
# Completeness and the cursor


def test_month_by_month_extraction_equals_ground_truth(replay):
    sim, pipeline, months = replay
    assert not sim.pending(datetime(2100, 1, 1, tzinfo=UTC)), "the replay must cover the whole world"
    for as_of, new_truth, batches in months:
        got = [e for b in batches for e in b.events]
        assert ids(got) == childcare_ids(new_truth), f"month before {as_of:%Y-%m}"
        assert sum(b.not_childcare for b in batches) == sum(not t["childcare"] for t in new_truth)
        assert sum(b.read for b in batches) == len(new_truth)
        assert not [r for b in batches for r in b.invalid]
    truth = sim.ground_truth()
    assert ids(pipeline.events) == childcare_ids(truth)
    assert len({e.event_id for e in pipeline.events}) == len(pipeline.events), "duplicates"
    assert sum(not t["childcare"] for t in truth) > 0, "the world must hold look-alikes"
    by_id = {t["event_id"]: t for t in truth}
    for event in pipeline.events:
        line = by_id[event.event_id]
        assert event.lineage.source_record_id == line["record_id"]
        assert event.lineage.source_version == str(line["version"])
        assert event.event_type.value == line["event_type"]
        assert event.event_date.isoformat() == line["event_date"]
        assert event.institution.uscc == line["uscc"]
        assert event.institution.county_code == line["county_code"]
        assert event.registrar is Registrar.MINZHENG


def test_events_fit_the_avro_contract(replay):
    _, pipeline, _ = replay
    codec = AvroCodec(get_contract(REGISTRATION_EVENT).latest.schema_str, 1)
    for event in pipeline.events:
        assert RegistrationEvent.from_avro(codec.decode(codec.encode(event.to_avro()))) == event


def test_second_run_emits_nothing(replay):
    sim, pipeline, _ = replay
    before = dict(pipeline.state)
    requests = sim.stats.requests
    again = Pipeline(for_simulator(sim, **FAST), state=before)
    assert again.run() == []
    assert again.state == before
    assert sim.stats.requests == requests + 1  # one page: the rows at the mark, all already taken


def test_mapping_masks_personal_data_and_keeps_faulty_records(replay):
    sim, pipeline, _ = replay
    truth = {t["event_id"]: t for t in sim.ground_truth()}
    faults = {f for t in truth.values() for f in t["faults"]}
    wanted = {Fault.BAD_CHECK_DIGIT, Fault.MISSING_NAME, Fault.BAD_LEGAL_REP_ID, Fault.UNKNOWN_DIVISION}
    assert wanted <= faults, "the fixture world must contain these faults"
    source_ids = {
        make_event_id(Registrar.MINZHENG, r.record_id, str(r.version)): r.snapshot.legal_rep.id_number
        for r in all_records(sim)
    }
    for event in pipeline.events:
        found = set(truth[event.event_id]["faults"])
        rep = event.institution.legal_representative
        assert rep is not None
        assert rep.id_valid is parse_resident_id(source_ids[event.event_id], today=END.date()).is_valid
        if Fault.BAD_LEGAL_REP_ID in found:
            assert rep.id_valid is False
        assert rep.id_number_masked is not None and "********" in rep.id_number_masked
        assert rep.phone_masked is not None and "****" in rep.phone_masked
        if Fault.MISSING_NAME in found:
            assert event.institution.name == ""
        if Fault.UNKNOWN_DIVISION in found:
            assert event.institution.county_code is None
            assert event.institution.county_resolution.method is CountyResolutionMethod.UNRESOLVED
        assert event.institution.legal_form is LegalForm.PRIVATE_NON_ENTERPRISE
        assert event.lineage.source_system == "minzheng-api"
        assert event.lineage.cursor_value is not None
    secrets = {r.snapshot.legal_rep.id_number for r in all_records(sim)}
    secrets |= {r.snapshot.legal_rep.phone for r in all_records(sim)}
    text = repr(pipeline.events) + json.dumps([e.to_avro() for e in pipeline.events], default=str)
    assert not [s for s in secrets if s in text], "a full ID or phone number left the connector"
    changed = [e for e in pipeline.events if e.event_type is EventType.CHANGED]
    assert changed and all(c.changed_fields[0].field == "legal_representative.name" for c in changed)
    assert all(isinstance(e.institution.registered_capital, Decimal) for e in pipeline.events)


def test_rows_committed_late_at_the_committed_instant_are_picked_up(sim):
    sim.publish_until(END)
    pipeline = Pipeline(for_simulator(sim, **FAST))
    pipeline.run()
    mark = pipeline.state["value"]
    last = next(r for r in all_records(sim) if update_time(r.surfaced_at) == mark)
    # Same updateTime as the last row taken; one id sorts before it, one after.
    late = [clone(last, "MI0000000", last.surfaced_at), clone(last, "MI9999999", last.surfaced_at)]
    sim.inject(late)
    new = pipeline.run()
    assert ids([e for b in new for e in b.events]) == sorted(
        make_event_id(Registrar.MINZHENG, r.record_id, "1") for r in late
    )
    assert pipeline.state["value"] == mark
    assert pipeline.run() == []
    assert ids(pipeline.events) == childcare_ids(sim.ground_truth())


def test_a_tie_group_bigger_than_a_page_is_read_through(sim):
    sim.publish_until(END)
    base = all_records(sim)[0]
    instant = END + timedelta(hours=1)
    sim.inject([clone(base, f"MT{n:07d}", instant) for n in range(10, 17)])  # 7 rows at one instant
    pipeline = Pipeline(for_simulator(sim, **FAST))
    pipeline.run(LATE, batch_size=3)
    assert pipeline.state["value"] == update_time(instant) and len(pipeline.state["ties"]) == 7
    # Late rows at the mark's instant, sorting before the tie group: found on page 1.
    sim.inject([clone(base, f"MT{n:07d}", instant) for n in range(1, 3)])
    assert len([e for b in pipeline.run(LATE, batch_size=3) for e in b.events]) == 2
    # Now every row at the mark is taken: three whole pages of ties, then the new row.
    sim.inject([clone(base, "MU0000001", instant + timedelta(minutes=1))])
    assert len([e for b in pipeline.run(LATE, batch_size=3) for e in b.events]) == 1
    assert [q for q, _ in sim.stats.log[-4:]] == [
        f"updated_since={update_time(instant).replace(':', '%3A')}&page={n}&page_size=3" for n in range(1, 5)
    ]
    assert ids(pipeline.events) == childcare_ids(sim.ground_truth())
    assert len({e.event_id for e in pipeline.events}) == len(pipeline.events)


# ---------------------------------------------------------------------------------------------------
# Paging while rows are committed


def test_naive_offset_paging_loses_rows_inserted_mid_read(sim):
    """The quirk the connector is built against: OFFSET pages over a table that grows mid-read."""
    sim.publish_until(END)
    seen: list[tuple[str, int]] = []
    with httpx.Client(base_url=sim.base_url) as client:

        def page(n: int) -> list[dict[str, Any]]:
            params = {"updated_since": "2026-01-01T00:00:00", "page": n, "page_size": 10}
            body = client.get(API_PATH, params=params).json()
            assert body["code"] == 0
            return body["data"]["records"]

        first = page(1)
        seen += [(r["id"], r["version"]) for r in first]
        last = next(r for r in all_records(sim) if r.record_id == first[-1]["id"])
        sim.inject([clone(last, "MI0000000", last.surfaced_at)])  # same second, smaller id
        n = 2
        while rows := page(n):
            seen += [(r["id"], r["version"]) for r in rows]
            n += 1
    assert ("MI0000000", 1) not in seen
    assert len(seen) != len(set(seen)), "the shifted row is read twice"


def test_rows_inserted_between_page_reads_are_not_lost(sim):
    sim.publish_until(END)
    connector = for_simulator(sim, **FAST)
    ctx = ExtractContext(extracted_at=END, run_id="mid-read", batch_size=10)
    pages = connector.batches({}, ctx)
    first = next(pages)  # page 1 is read and yielded; page 2 is not requested yet
    mark = first.state["value"]
    last = next(r for r in all_records(sim) if update_time(r.surfaced_at) == mark)
    later = all_records(sim)[60]
    sim.inject(
        [
            clone(last, "MI0000000", last.surfaced_at),  # before the offset: OFFSET paging misses it
            clone(later, "MI0000001", later.surfaced_at),  # further on: shifts the following pages
        ]
    )
    events = first.events + [e for batch in pages for e in batch.events]
    assert ids(events) == childcare_ids(sim.ground_truth())
    assert len({e.event_id for e in events}) == len(events)


# ---------------------------------------------------------------------------------------------------
# Retries, failures and the committed state


class _SleepClock:
    """Time that passes only when the client sleeps: the rate limit sees every request at the same
    instant until the client waits, however slowly a loaded machine runs the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_limited_requests_are_retried_after_retry_after(sim):
    sim.publish_until(END)
    clock = _SleepClock()
    sim.quirks = ApiQuirks(rate_limit=3, rate_window=0.1, clock=clock)
    # Retry-After says 1 s (whole seconds); the cap keeps the test fast and still outlasts the window.
    pipeline = Pipeline(for_simulator(sim, **{**FAST, "max_retry_after": 0.15, "sleep": clock.sleep}))
    pipeline.run()
    assert ids(pipeline.events) == childcare_ids(sim.ground_truth())
    assert sim.stats.statuses[429] >= 1
    assert sim.stats.max_consecutive_429 == 1, "each 429 was followed by a long enough wait"


def test_the_rate_limit_refuses_a_client_that_ignores_retry_after(sim):
    """Control for the test above: retrying sooner than Retry-After is refused again."""
    sim.publish_until(END)
    clock = _SleepClock()
    sim.quirks = ApiQuirks(rate_limit=3, rate_window=0.1, clock=clock)
    impatient = {**FAST, "max_retry_after": 0.0, "sleep": clock.sleep}
    with pytest.raises(RetriableSourceError, match="429"):
        Pipeline(for_simulator(sim, **impatient)).run()
    assert sim.stats.max_consecutive_429 == FAST["max_attempts"]


def test_server_errors_and_dropped_connections_are_retried(sim):
    sim.publish_until(END)
    sim.quirks = ApiQuirks(seed=7, error_rate=0.25, drop_rate=0.1)
    pipeline = Pipeline(for_simulator(sim, **{**FAST, "max_attempts": 8}))
    pipeline.run()
    assert ids(pipeline.events) == childcare_ids(sim.ground_truth())
    assert sum(n for status, n in sim.stats.statuses.items() if status >= 500) >= 1
    assert sim.stats.dropped >= 1


def test_persistent_failure_raises_and_leaves_the_committed_state(sim):
    sim.publish_until(MONTH_ENDS[0])
    pipeline = Pipeline(for_simulator(sim, **FAST))
    pipeline.run(MONTH_ENDS[0])
    committed = dict(pipeline.state)
    sim.publish_until(MONTH_ENDS[1])
    sim.quirks = ApiQuirks(fail_after=0)
    before = sim.stats.requests
    with pytest.raises(RetriableSourceError) as caught:
        pipeline.run(MONTH_ENDS[1])
    message = str(caught.value)
    assert "minzheng" in message
    assert f"{sim.base_url}{API_PATH}?updated_since=" in message
    assert "5 attempts" in message
    assert "HTTP 503" in message
    assert pipeline.state == committed
    assert sim.stats.requests - before == FAST["max_attempts"]
    assert sim.stats.statuses[503] == FAST["max_attempts"]


def test_failure_mid_run_commits_only_rows_read_then_resumes_exactly(sim):
    sim.publish_until(END)
    sim.quirks = ApiQuirks(fail_after=3)  # three pages answered, then the platform goes down
    pipeline = Pipeline(for_simulator(sim, **FAST))
    with pytest.raises(RetriableSourceError):
        pipeline.run()
    assert len(pipeline.batches) == 3
    read = sum(b.read for b in pipeline.batches)
    truth = sorted(sim.ground_truth(), key=sort_key)
    assert ids(pipeline.events) == childcare_ids(truth[:read]), "a committed batch skipped unread rows"
    assert pipeline.state["value"] == sort_key(truth[read - 1])[0]
    sim.quirks = ApiQuirks()
    pipeline.run()
    assert ids(pipeline.events) == childcare_ids(sim.ground_truth())


def test_bearer_token_is_required_and_wrong_tokens_are_not_retried(world, tmp_path):
    with MinzhengApiSimulator(world, tmp_path, token="s3cret-token") as sim:
        sim.publish_until(MONTH_ENDS[0])
        good = Pipeline(for_simulator(sim, **FAST))
        good.run(MONTH_ENDS[0])
        assert ids(good.events) == childcare_ids(sim.ground_truth())
        for token in ("wrong-token", None):
            before = sim.stats.requests
            bad = MinzhengConnector(sim.base_url, token=token, **FAST)
            with pytest.raises(FatalSourceError, match="HTTP 401") as caught:
                Pipeline(bad).run(MONTH_ENDS[0])
            assert sim.stats.requests - before == 1
            assert "s3cret" not in str(caught.value)
            assert "s3cret" not in repr(bad)


# ---------------------------------------------------------------------------------------------------
# Rows that cannot become events, the API itself, the server's lifecycle


def test_unusable_rows_go_to_invalid_masked_and_the_cursor_moves_past_them(sim):
    sim.publish_until(END)
    pipeline = Pipeline(for_simulator(sim, **FAST))
    pipeline.run()
    good = json.loads(json.dumps(render(all_records(sim)[0])))
    stamp = "2027-01-05T10:00:00"
    bad_rows = [
        {**good, "id": "MX0000001", "updateTime": stamp, "changeType": "99"},
        {**good, "id": "MX0000002", "updateTime": stamp, "approveDate": "not a date"},
        {**good, "id": "MX0000003", "updateTime": stamp, "status": "冻结"},
        {**good, "id": None, "updateTime": stamp},
        {
            **good,
            "id": "MX0000005",
            "updateTime": stamp,
            "changeType": "99",
            "businessScope": "课后托管服务",
            "orgName": "课后托管中心",
        },
    ]
    sim.inject_rows(bad_rows)
    new = pipeline.run(LATE)
    invalid = [r for b in new for r in b.invalid]
    assert [r.source_record_id for r in invalid] == ["", "MX0000001", "MX0000002", "MX0000003"]
    assert all(r.reason.startswith("minzheng: record ") for r in invalid)
    assert "no id or version" in invalid[0].reason
    assert "unknown change code '99' on record MX0000001" in invalid[1].reason
    assert "unrecognised date 'not a date'" in invalid[2].reason
    assert "冻结" in invalid[3].reason
    assert not [e for b in new for e in b.events]
    assert sum(b.not_childcare for b in new) == 1
    full_id = good["legalPersonIdNo"]
    assert all(full_id not in r.raw.decode() for r in invalid)
    assert json.loads(invalid[1].raw)["legalPersonIdNo"].startswith(full_id[:6] + "*")
    assert pipeline.state["value"] == stamp
    assert pipeline.run() == []


def test_api_shape_and_parameter_errors(sim):
    sim.publish_until(MONTH_ENDS[0])
    with httpx.Client(base_url=sim.base_url) as client:
        body = client.get(API_PATH, params={"page": 1, "page_size": 5}).json()
        assert body["code"] == 0 and body["msg"] == "ok"
        data = body["data"]
        assert data["total"] == len(sim.ground_truth()) and data["page"] == 1 and data["pageSize"] == 5
        rows = client.get(API_PATH, params={"page_size": 500}).json()["data"]["records"]
        keys = [(r["updateTime"], r["id"], r["version"]) for r in rows]
        assert keys == sorted(keys)
        assert {
            "id",
            "version",
            "updateTime",
            "changeType",
            "creditCode",
            "orgName",
            "legalPersonIdNo",
        } <= rows[0].keys()
        assert all(r["creditCode"].startswith("52") or r["id"].startswith("MI") for r in rows)
        since = rows[3]["updateTime"]
        later = client.get(API_PATH, params={"updated_since": since}).json()["data"]["records"]
        assert all(r["updateTime"] >= since for r in later) and later[0]["updateTime"] == since
        assert client.get(API_PATH, params={"page_size": 501}).status_code == 400
        assert client.get(API_PATH, params={"updated_since": "yesterday"}).status_code == 400
        assert client.get("/api/v1/nothing").status_code == 404


def test_close_stops_the_server_and_is_idempotent(world, tmp_path):
    sim = MinzhengApiSimulator(world, tmp_path)
    url = sim.base_url
    with httpx.Client(base_url=url) as client:
        assert client.get(API_PATH).status_code == 200  # leaves a keep-alive connection open
        sim.close()
        with pytest.raises(httpx.TransportError):
            client.get(API_PATH)
    assert not sim._thread.is_alive()
    sim.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + API_PATH, timeout=1.0)
