"""The high-water mark's end bound (issue 14 §3): rows stamped after a run's as-of wait for the next run.

Each source is published up to a late instant, then read twice from committed state: as of an
instant on which a childcare row is stamped exactly (that row is this run's), then as of the end.
The first run holds exactly the rows stamped up to its as-of; both together hold the ground truth
once. Without the bound, a run stamped for the 31st took what surfaced on the 1st into the month
before, where the gate flagged it LATE_PUSH.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import ExtractContext
from regsync.sources import for_simulator
from simulators.bianzhi_db import BianzhiDb, gxsj_of
from simulators.jiaoyu_feed import JiaoyuFeed
from simulators.minzheng_api import MinzhengApiSimulator
from simulators.shenpi_db import ShenpiDb
from simulators.world import WorldConfig, build_world

END = datetime(2027, 2, 1, tzinfo=UTC)
KITS = {"bianzhi": BianzhiDb, "shenpi": ShenpiDb, "jiaoyu": JiaoyuFeed}


def _stamp(source: str, surfaced: datetime) -> datetime:
    """The instant the source stamps a row with (编制: the hour of the hourly job)."""
    if source == "bianzhi":
        from zoneinfo import ZoneInfo

        return gxsj_of(surfaced).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return surfaced


def _run(connector: Any, state: dict, as_of: datetime) -> tuple[set[str], dict]:
    ids: set[str] = set()
    for batch in connector.batches(state, ExtractContext(as_of, "bound", batch_size=5)):
        ids |= {e.event_id for e in batch.events}
        state = batch.state
    return ids, state


@pytest.mark.parametrize("source", list(KITS))
def test_rows_stamped_after_the_as_of_wait_for_the_next_run(source, tmp_path):
    world = build_world(WorldConfig(institutions_per_month=20))
    kwargs = {"torn_rate": 0.0} if source == "jiaoyu" else {}
    sim = KITS[source](world, tmp_path, **kwargs)
    try:
        sim.publish_until(END)
        truth = [t for t in sim.ground_truth() if t["childcare"]]
        stamped = {t["event_id"]: _stamp(source, datetime.fromisoformat(t["surfaced_at"])) for t in truth}
        boundary = sorted(stamped.values())[len(stamped) // 2]  # a row sits exactly on it
        connector = for_simulator(sim)
        first, state = _run(connector, {}, boundary)
        assert first == {i for i, at in stamped.items() if at <= boundary}
        assert any(stamped[i] == boundary for i in first), "the row at the as-of instant is this run's"
        second, _ = _run(connector, state, END)
        assert not first & second
        assert first | second == set(stamped)
    finally:
        sim.close()


def test_minzheng_end_bound_to_the_second(tmp_path):
    world = build_world(WorldConfig(institutions_per_month=10, prefectures=("441800",)))
    with MinzhengApiSimulator(world, tmp_path) as sim:
        sim.publish_until(END)
        connector = for_simulator(sim, max_attempts=2, backoff_initial=0.001, backoff_max=0.002, jitter=0.001)
        _, state = _run(connector, {}, END)
        base = next(r for r in world.records if r.registrar.value == "MINZHENG" and r.childcare)
        at = END + timedelta(days=3)
        on, after = (replace(base, record_id=rid, version=1, surfaced_at=t, faults=()) for rid, t in
                     (("MB0000001", at), ("MB0000002", at + timedelta(seconds=1))))  # fmt: skip
        sim.inject([on, after])
        first, state = _run(connector, state, at)
        second, _ = _run(connector, state, at + timedelta(seconds=1))
        assert len(first) == 1 and len(second) == 1 and first != second


def test_shichang_file_produced_after_the_as_of_waits_for_the_next_run(tmp_path):
    from datetime import date

    from connectors.shichang import ShichangConnector
    from simulators.shichang_files import as_row, exchange_instant, write_day_file

    row = as_row(record_id="SCT000001", version="1", uscc="91441802MA4W000000", name="清远托育服务有限公司",
                 entity_type="企业", address="广东省清远市清城区育才路1号", division="441802", scope="托育服务",
                 change_code="01", approved="2026-01-05")  # fmt: skip
    made = exchange_instant(date(2026, 1, 5))
    write_day_file(tmp_path / "SCJG_20260105.csv", [row], made)
    connector = ShichangConnector(tmp_path)
    early, state = _run(connector, {}, made - timedelta(seconds=1))
    assert early == set()
    on_time, _ = _run(connector, state, made)
    assert len(on_time) == 1
