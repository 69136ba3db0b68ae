"""Extract's per-batch encoding (issue 12): one batch call of the codec, every bad record still named.

``_Run.prepare`` encodes a batch through ``AvroCodec.encode_many``; when that fails on a record
that does not fit the contract, the batch is encoded again record by record so the bad one goes to
the DLQ with its reason and the rest are sent. A real codec over the real contract; no Kafka
(``prepare`` sends nothing).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from itertools import islice

from bench.source import SyntheticConnector, synthetic_events
from connectors.base import Batch
from regsync.kafka import bus
from regsync.kafka.topics import Topics
from regsync.stages.extract import MAX_EVENT_BYTES, _Run, push_stamp
from schemas.codec import AvroCodec
from schemas.contracts import REGISTRATION_EVENT, REJECTED_RECORD, get_contract

AS_OF = datetime(2026, 1, 31, 15, tzinfo=UTC)
PREVIOUS = datetime(2026, 1, 1, tzinfo=UTC)


def _run() -> _Run:
    raw = AvroCodec(get_contract(REGISTRATION_EVENT).latest.schema_str, 7)
    rejected = AvroCodec(get_contract(REJECTED_RECORD).latest.schema_str, 8)
    codecs = bus.Codecs(raw=raw, valid=raw, rejected=rejected)
    connector = SyntheticConnector(0, month="2026-01")
    return _Run("bench-synthetic", "run-1", Topics(prefix="t."), AS_OF, PREVIOUS, codecs, None, connector)


def _events(n: int) -> list:
    return list(islice(synthetic_events(n, month="2026-01"), n))


def test_a_batch_encodes_to_the_same_bytes_as_one_record_at_a_time():
    run, events = _run(), _events(40)
    ready = run.prepare(Batch(events=events, read=40), set())
    assert ready.invalid == []
    assert [v for _, v, _, _ in ready.values] == [run.codecs.raw.encode(e.to_wire()) for e in events]
    assert [k for k, _, _, _ in ready.values] == [e.kafka_key for e in events]
    assert [i for _, _, i, _ in ready.values] == [e.event_id.encode() for e in events]
    assert {s for _, _, _, s in ready.values} == {push_stamp(None, PREVIOUS, AS_OF)}


def test_one_record_that_does_not_fit_goes_to_the_dlq_and_the_rest_are_sent():
    run, events = _run(), _events(10)
    bad = dataclasses.replace(events[3], institution=dataclasses.replace(events[3].institution, name=None))
    batch = Batch(events=[*events[:3], bad, *events[4:]], read=10)
    ready = run.prepare(batch, set())
    assert len(ready.values) == 9
    assert [i for _, _, i, _ in ready.values] == [e.event_id.encode() for e in events if e is not events[3]]
    (dlq,) = ready.invalid
    assert dlq.source_record_id == bad.lineage.source_record_id
    assert "does not fit the contract" in dlq.reason and "name" in dlq.reason


def test_an_oversized_event_is_named_on_the_batch_path_too():
    run, events = _run(), _events(5)
    huge = "托育服务" * (MAX_EVENT_BYTES // 8)
    big = dataclasses.replace(
        events[1], institution=dataclasses.replace(events[1].institution, business_scope=huge)
    )
    ready = run.prepare(Batch(events=[events[0], big, *events[2:]], read=5), set())
    assert len(ready.values) == 4
    (dlq,) = ready.invalid
    assert dlq.source_record_id == big.lineage.source_record_id
    assert "-byte limit" in dlq.reason


def test_events_already_on_the_topic_are_skipped_and_counted():
    run, events = _run(), _events(6)
    ready = run.prepare(Batch(events=events, read=6), {events[0].event_id, events[5].event_id})
    assert ready.recovered == 2
    assert ready.covered == {events[0].event_id, events[5].event_id}
    assert [i for _, _, i, _ in ready.values] == [e.event_id.encode() for e in events[1:5]]


def test_a_change_time_still_stamps_its_own_event():
    run, events = _run(), _events(3)
    surfaced = datetime(2026, 1, 20, tzinfo=UTC)
    ready = run.prepare(Batch(events=events, read=3, surfaced={events[1].event_id: surfaced}), set())
    stamps = [s for _, _, _, s in ready.values]
    assert stamps == [
        push_stamp(None, PREVIOUS, AS_OF),
        int(surfaced.timestamp() * 1000),
        push_stamp(None, PREVIOUS, AS_OF),
    ]


def test_the_collector_settings_hold_for_the_loop_and_come_back_after_it():
    """Frozen start-up objects and a larger young generation only while batch loops run (issue 12)."""
    import gc

    from regsync.collector import startup_objects_frozen

    before, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    with startup_objects_frozen():
        assert gc.get_threshold()[0] == 10_000
        assert gc.get_freeze_count() > frozen_before
        with startup_objects_frozen():  # a second run in another thread of the same process
            pass
        assert gc.get_threshold()[0] == 10_000  # the first run still has its settings
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before


def test_the_collector_settings_come_back_when_the_loop_fails():
    import gc

    import pytest

    from regsync.collector import startup_objects_frozen

    before = gc.get_threshold()
    with pytest.raises(RuntimeError), startup_objects_frozen():
        raise RuntimeError("source failed")
    assert gc.get_threshold() == before


def test_a_freeze_made_before_the_first_loop_is_kept():
    """The gate's caller (or an embedding process) may have frozen its own objects: not undone here."""
    import gc

    from regsync.collector import startup_objects_frozen

    gc.freeze()
    try:
        frozen_before = gc.get_freeze_count()
        with startup_objects_frozen():
            pass
        assert gc.get_freeze_count() >= frozen_before > 0
    finally:
        gc.unfreeze()
