"""One contract every connector passes, through real Kafka, against its simulator's ground truth.

Months are replayed on the as-of clock: each month the simulator shows what surfaced by its end and
the connector extracts into ``registrations.raw``. Then: the topic holds exactly the ground truth's
childcare event ids (nothing lost, nothing extra, nothing twice), every record is keyed by its USCC
and stamped with its push instant — inside its poll's window (previous as-of, as-of], and the as-of
itself for a source without a change time or on its first run (docs/domain.md, "pushed in month M") — events decode against the registered contract,
cursor values only move forward, every row read is accounted for, and a further run adds nothing.
"""

from __future__ import annotations

import importlib
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pipeline_setup import pipeline_params

from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.sources import for_simulator
from regsync.stages.extract import run_extract
from schemas.events import RegistrationEvent
from simulators.world import WorldConfig, build_world

KITS = {
    "bianzhi": "simulators.bianzhi_db:BianzhiDb",
    "shenpi": "simulators.shenpi_db:ShenpiDb",
    "minzheng": "simulators.minzheng_api:MinzhengApiSimulator",
    "shichang": "simulators.shichang_files:ShichangFiles",
    "jiaoyu": "simulators.jiaoyu_feed:JiaoyuFeed",
}
TZ = ZoneInfo("Asia/Shanghai")


def _simulator_class(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _month_ends(months: tuple[str, ...], extra: int = 2) -> list[datetime]:
    """The last working evening of each replayed month, plus a few months for late pushes."""
    ends = []
    year, mon = (int(x) for x in months[0].split("-"))
    for _ in range(len(months) + extra):
        nxt = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=TZ)
        ends.append(nxt - timedelta(hours=4))
        year, mon = nxt.year, nxt.month
    return ends


@pytest.mark.parametrize("source", list(KITS))
def test_connector_contract(source, stack, uid, database_url, tmp_path, as_components):
    world = build_world(WorldConfig(institutions_per_month=25))
    sim = _simulator_class(KITS[source])(world, tmp_path / source)
    topics = Topics(prefix=f"t{uid}.")
    common = pipeline_params(stack, database_url, topics, as_components)
    try:
        pushed_at: dict[str, int] = {}
        previous: dict[int, int | None] = {}  # as-of (ms) of a run → the as-of of the run before it
        last: int | None = None
        for as_of in _month_ends(world.config.months):
            previous[int(as_of.timestamp() * 1000)], last = last, int(as_of.timestamp() * 1000)
            sim.publish_until(as_of)
            cursor_trail: list = []

            def track(batch, _counts, trail=cursor_trail):
                trail.extend(batch.cursor_values)

            summary = run_extract(for_simulator(sim), as_of=as_of, batch_size=7, progress=track, **common)
            assert (
                summary.read
                == summary.published + summary.recovered + summary.not_childcare + summary.invalid
            )
            assert cursor_trail == sorted(cursor_trail), "cursor values went backwards within a run"
            assert len(cursor_trail) >= summary.published
            for record in bus.scan(stack.bootstrap_servers, topics.raw, {}):
                pushed_at.setdefault(bus.header(record, bus.HEADER_EVENT_ID), record.timestamp)
            for event_id, ts in pushed_at.items():
                assert ts <= int(as_of.timestamp() * 1000), event_id

        again = run_extract(for_simulator(sim), as_of=_month_ends(world.config.months)[-1], **common)
        assert again.published == 0

        truth = [t for t in sim.ground_truth() if t["childcare"]]
        codecs = bus.load_codecs(stack.registry_url, topics)
        records = list(bus.scan(stack.bootstrap_servers, topics.raw, {}))
        events = [RegistrationEvent.from_avro(codecs.raw.decode(r.value)) for r in records]
        ids = Counter(e.event_id for e in events)
        assert max(ids.values()) == 1, "an event id was published twice"
        assert set(ids) == {t["event_id"] for t in truth}
        by_id = {t["event_id"]: t for t in truth}
        for record, event in zip(records, events, strict=True):
            expected = by_id[event.event_id]
            assert record.key == event.institution.uscc.encode() == expected["uscc"].encode()
            assert event.event_type.value == expected["event_type"]
            assert event.registrar.value == expected["registrar"]
            assert bus.header(record, bus.HEADER_SOURCE) == source
            assert event.lineage.source_system == for_simulator(sim).spec.source_system
            polled = int(event.extracted_at.timestamp() * 1000)  # the as-of of the run that read it
            before = previous[polled]
            if before is None or for_simulator(sim).spec.surfaced_field is None:
                assert record.timestamp == polled
            else:
                assert before < record.timestamp <= polled, event.event_id
            # Nothing personal leaves the connector unmasked.
            rep = event.institution.legal_representative
            if rep is not None and rep.id_number_masked:
                assert "*" in rep.id_number_masked
    finally:
        sim.close()
