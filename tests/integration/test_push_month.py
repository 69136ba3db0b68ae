"""The month a record is pushed in follows the record, not the poll (issue 16, item 1), on the real broker.

编制's 更新时间 (``gxsj``) says when a change surfaced; extraction stamps the push with it, bounded to
the poll's window (previous as-of, as-of]. Boundary cases from the issue: a record that surfaced at
23:59:59 Beijing time on 31 January, polled at 00:00 and at 08:00 on 1 February; one committed at the
registrar after a poll had looked (its change time before the previous as-of); a change time after
the as-of, missing or garbled (the poll's as-of, never a crash).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from listsource import ListConnector, rows
from pipeline_setup import pipeline_params

from connectors.base import Batch, ExtractContext
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.sources import for_simulator
from regsync.stages.extract import run_extract
from schemas.events import Registrar, make_event_id
from schemas.month import Month
from simulators.bianzhi_db import BianzhiDb
from simulators.world import WorldConfig, build_world

BEIJING = ZoneInfo("Asia/Shanghai")
MS = timedelta(milliseconds=1)
NOON_31 = datetime(2026, 1, 31, 12, tzinfo=BEIJING)
LAST_SECOND = datetime(2026, 1, 31, 23, 59, 59, tzinfo=BEIJING)
MIDNIGHT = datetime(2026, 2, 1, tzinfo=BEIJING)


@pytest.fixture
def pipeline(stack, uid, database_url, as_components):
    return pipeline_params(stack, database_url, Topics(prefix=f"m{uid}."), login=as_components)


def _months(p) -> dict[str, str]:
    """Event id → the month its raw record was pushed in (its Kafka timestamp, Beijing time)."""
    out = {}
    for record in bus.scan(p["bootstrap"], p["topics"].raw, {}):
        at = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        out[bus.header(record, bus.HEADER_EVENT_ID)] = str(Month.of(at, "Asia/Shanghai"))
    return out


@pytest.mark.parametrize(
    ("poll", "month_before", "month_after"), [(0, "2026-01", "2026-01"), (8, "2026-02", "2026-01")]
)
def test_a_record_surfaced_in_the_last_second_of_january(pipeline, tmp_path, poll, month_before, month_after):
    """month_before: what the window-end stamp gave (the poll's as-of); month_after: this change."""
    world = build_world(WorldConfig(months=("2026-01",), institutions_per_month=12))
    sim = BianzhiDb(world, tmp_path / "bianzhi")
    try:
        base = next(
            r for r in world.records if r.registrar is Registrar.BIANZHI and r.childcare and r.version == 1
        )
        last = replace(base, record_id="BZX000001", surfaced_at=LAST_SECOND.astimezone(UTC), faults=())
        late = replace(
            base,
            record_id="BZX000002",
            surfaced_at=(LAST_SECOND - timedelta(minutes=30)).astimezone(UTC),
            faults=(),
        )
        sim.extra.append(last)
        sim.publish_until(NOON_31.astimezone(UTC))
        connector = for_simulator(sim)
        run_extract(connector, as_of=NOON_31 - MS, **pipeline)  # the previous poll, noon on the 31st
        as_of = MIDNIGHT + timedelta(hours=poll) - MS  # the poll's window end (an 08:00 manual run: now)
        sim.publish_until(as_of.astimezone(UTC))
        run_extract(connector, as_of=as_of, **pipeline)
        months = _months(pipeline)
        last_id = make_event_id("BIANZHI", "BZX000001", "1")
        assert str(Month.of(as_of, "Asia/Shanghai")) == month_before
        assert months[last_id] == month_after
        # Committed at the registrar after that poll looked, with a change time of 23:29:59 on the
        # 31st: pushed just after the poll's as-of, never into January (which may be loaded by now).
        sim.extra.append(late)
        sim.publish_until((MIDNIGHT + timedelta(hours=9)).astimezone(UTC))
        run_extract(connector, as_of=MIDNIGHT + timedelta(hours=9) - MS, **pipeline)
        months = _months(pipeline)
        assert months[make_event_id("BIANZHI", "BZX000002", "1")] == "2026-02"
        assert months[last_id] == month_after  # published once, its stamp unchanged
    finally:
        sim.close()


class ChangeTimeConnector(ListConnector):
    """List rows whose ``changed`` field is the source's change time, however it is spelled."""

    spec = replace(ListConnector.spec, name="changetime", surfaced_field="changed")

    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        for batch in super().batches(state, ctx):
            out = Batch(read=batch.read, state=batch.state)
            for event, row in zip(batch.events, self.rows, strict=False):
                self.take(out, row["id"], row, lambda event=event: event)
            yield out

    def __init__(self, data: list[dict[str, Any]]) -> None:
        super().__init__(data)
        self.rows = self.data


def test_change_times_after_the_as_of_missing_or_garbled_give_the_as_of(pipeline):
    data = rows(5)
    changed = ["2026-01-31 23:59:59", "2026-02-03 10:00:00", None, "31/01/2026", "2026-01-31 08:00:00"]
    for row, value in zip(data, changed, strict=True):
        row["changed"] = value
    connector = ChangeTimeConnector(data[:0])
    run_extract(connector, as_of=NOON_31 - MS, **pipeline)  # a first, empty poll opens the window
    as_of = MIDNIGHT + timedelta(hours=8) - MS
    summary = run_extract(ChangeTimeConnector(data), as_of=as_of, **pipeline)
    assert summary.published == 5 and summary.invalid == 0  # nothing crashed, nothing left out
    stamps = {}
    for record in bus.scan(pipeline["bootstrap"], pipeline["topics"].raw, {}):
        stamps[bus.header(record, bus.HEADER_EVENT_ID)] = record.timestamp
    by_row = [
        stamps[e.event_id]
        for b in ChangeTimeConnector(data).batches({}, ExtractContext(as_of, "x"))
        for e in b.events
    ]
    end = int(as_of.timestamp() * 1000)
    assert by_row == [int(LAST_SECOND.timestamp() * 1000), end, end, end, int(NOON_31.timestamp() * 1000)]
