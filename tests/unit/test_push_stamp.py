"""The push instant of an extracted record, and so its month (issue 16, item 1).

A record is pushed when it became available in the registrar's system, where the source says so,
bounded to the poll's window (previous as-of, as-of]; otherwise at the poll's as-of.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.base import ExtractContext, surfaced_instant
from regsync.sources import for_simulator
from regsync.stages.extract import push_stamp
from schemas.month import Month
from simulators.bianzhi_db import BianzhiDb, gxsj_of
from simulators.jiaoyu_feed import JiaoyuFeed
from simulators.minzheng_api import MinzhengApiSimulator
from simulators.shenpi_db import ShenpiDb
from simulators.world import WorldConfig, build_world

BEIJING = ZoneInfo("Asia/Shanghai")
MS = timedelta(milliseconds=1)
LAST_SECOND = datetime(2026, 1, 31, 23, 59, 59, tzinfo=BEIJING)  # 31 January, Beijing
MIDNIGHT = datetime(2026, 2, 1, tzinfo=BEIJING)
NOON_31 = datetime(2026, 1, 31, 12, tzinfo=BEIJING)


def month(ms: int) -> str:
    return str(Month.of(datetime.fromtimestamp(ms / 1000, UTC), "Asia/Shanghai"))


@pytest.mark.parametrize(
    ("surfaced", "previous", "as_of", "expected"),
    [
        # surfaced 23:59:59 on the 31st; the previous poll at noon on the 31st
        pytest.param(LAST_SECOND, NOON_31 - MS, MIDNIGHT - MS, "2026-01", id="00:00-poll"),
        pytest.param(
            LAST_SECOND, NOON_31 - MS, MIDNIGHT + timedelta(hours=8) - MS, "2026-01", id="08:00-poll"
        ),
        pytest.param(None, NOON_31 - MS, MIDNIGHT + timedelta(hours=8) - MS, "2026-02", id="no-time-08:00"),
        # committed late: stamped 23:00 but the midnight poll had looked already → never into January
        pytest.param(
            LAST_SECOND, MIDNIGHT - MS, MIDNIGHT + timedelta(hours=8) - MS, "2026-02", id="before-prev"
        ),
        # a change time after the as-of (a clock ahead at the source): the as-of
        pytest.param(MIDNIGHT + timedelta(days=3), NOON_31 - MS, MIDNIGHT - MS, "2026-01", id="after-as-of"),
        # the first run of a source has no window start: the as-of
        pytest.param(LAST_SECOND, None, MIDNIGHT + timedelta(hours=8) - MS, "2026-02", id="first-run"),
        # a re-run of an old poll (as-of before the previous one): the as-of
        pytest.param(LAST_SECOND, MIDNIGHT + timedelta(hours=8), MIDNIGHT - MS, "2026-01", id="old-rerun"),
    ],
)
def test_the_month_of_a_push(surfaced, previous, as_of, expected):
    stamp = push_stamp(surfaced, previous, as_of)
    assert month(stamp) == expected
    assert stamp <= int(as_of.timestamp() * 1000)  # never after the as-of
    if previous is not None and previous < as_of:
        assert stamp > int(previous.timestamp() * 1000)  # never at or before the previous as-of


def test_the_stamp_is_the_change_time_inside_the_window():
    assert push_stamp(LAST_SECOND, NOON_31, MIDNIGHT) == int(LAST_SECOND.timestamp() * 1000)
    assert push_stamp(NOON_31 - timedelta(hours=1), NOON_31, MIDNIGHT) == int(NOON_31.timestamp() * 1000) + 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-31 23:59:59", LAST_SECOND),  # Beijing text, as 编制, 行政审批 write it
        ("2026-01-31T23:59:59", LAST_SECOND),  # 民政's form
        ("2026-01-31T15:59:59+00:00", LAST_SECOND),  # 教育's reported_at carries its offset
        (datetime(2026, 1, 31, 23, 59, 59), LAST_SECOND),  # a naive TIMESTAMP column
        ("", None),
        ("  ", None),
        (None, None),
        ("31/01/2026 23:59", None),
        ("2026-02-30 10:00:00", None),
        (20260131, None),
        ("\x00" * 10, None),
    ],
)
def test_change_times_are_read_or_left_out_never_raised(value, expected):
    assert surfaced_instant(value) == expected


def _local(source: str, surfaced: datetime) -> datetime:
    """What the source writes for a change that surfaced then (编制: the hour of its hourly job)."""
    if source == "bianzhi":
        return gxsj_of(surfaced).replace(tzinfo=BEIJING)
    if source in ("shenpi", "minzheng"):
        return surfaced.astimezone(BEIJING).replace(microsecond=0)
    return surfaced


@pytest.mark.parametrize("source", ["bianzhi", "shenpi", "jiaoyu", "minzheng"])
def test_sources_with_a_change_time_hand_it_on_for_every_event(source, tmp_path):
    config = WorldConfig(institutions_per_month=10, prefectures=("441800",)) if source == "minzheng" else None
    world = build_world(config or WorldConfig(institutions_per_month=20))
    kits: dict[str, Any] = {"bianzhi": BianzhiDb, "shenpi": ShenpiDb, "jiaoyu": JiaoyuFeed}
    end = datetime(2027, 2, 1, tzinfo=UTC)
    if source == "minzheng":
        sim: Any = MinzhengApiSimulator(world, tmp_path)
        sim.__enter__()
    else:
        sim = kits[source](world, tmp_path, **({"torn_rate": 0.0} if source == "jiaoyu" else {}))
    try:
        sim.publish_until(end)
        truth = {
            t["event_id"]: datetime.fromisoformat(t["surfaced_at"])
            for t in sim.ground_truth()
            if t["childcare"]
        }
        connector = for_simulator(sim)
        surfaced: dict[str, datetime] = {}
        events: set[str] = set()
        for batch in connector.batches({}, ExtractContext(end, "t", batch_size=7)):
            events |= {e.event_id for e in batch.events}
            surfaced |= batch.surfaced
        assert events and set(surfaced) == events
        assert all(surfaced[i] == _local(source, truth[i]) for i in events)
    finally:
        (sim.__exit__(None, None, None) if source == "minzheng" else sim.close())
