"""When a bounded gate run may stop: the local high-watermark shortcut and its fall-backs (no Kafka).

The consumer is a stand-in that records which broker calls were made; the logic under test is
:func:`regsync.stages.gate._caught_up`, which the integration tests exercise against real Kafka.
"""

from __future__ import annotations

from kafka import TopicPartition

from regsync.stages.gate import _caught_up

TOPIC = "raw"
TPS = [TopicPartition(TOPIC, p) for p in range(3)]


class FakeConsumer:
    """Positions, last-fetch high watermarks, broker ends and committed offsets; counts broker calls."""

    def __init__(
        self,
        assigned: list[TopicPartition],
        positions: dict[TopicPartition, int],
        highwater: dict[TopicPartition, int | None],
        ends: dict[TopicPartition, int],
        committed: dict[TopicPartition, int] | None = None,
    ) -> None:
        self._assigned = set(assigned)
        self._positions, self._highwater, self._ends = positions, highwater, ends
        self._committed = committed or {}
        self.end_offsets_asked: list[list[TopicPartition]] = []

    def subscription(self) -> set[str]:
        return {TOPIC}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in TPS}

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._highwater.get(tp)

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int:
        return self._positions[tp]

    def committed(self, tp: TopicPartition) -> int | None:
        return self._committed.get(tp)

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.end_offsets_asked.append(list(tps))
        return {tp: self._ends[tp] for tp in tps}


def test_every_partition_read_to_its_high_watermark_needs_no_broker_call():
    consumer = FakeConsumer(TPS, dict.fromkeys(TPS, 10), dict.fromkeys(TPS, 10), dict.fromkeys(TPS, 10))
    assert _caught_up(consumer, 1) is True  # type: ignore[arg-type]
    assert consumer.end_offsets_asked == []


def test_behind_the_high_watermark_asks_the_broker_which_may_say_done():
    # An open transaction on raw: the high watermark is past the last stable offset, which the
    # read_committed position has reached. Only the broker's end (the LSO) can say it is done.
    consumer = FakeConsumer(TPS, dict.fromkeys(TPS, 8), dict.fromkeys(TPS, 10), dict.fromkeys(TPS, 8))
    assert _caught_up(consumer, 1) is True  # type: ignore[arg-type]
    assert consumer.end_offsets_asked == [TPS]


def test_behind_the_end_is_not_caught_up():
    consumer = FakeConsumer(
        TPS, {**dict.fromkeys(TPS, 10), TPS[1]: 7}, dict.fromkeys(TPS, 10), dict.fromkeys(TPS, 10)
    )
    assert _caught_up(consumer, 1) is False  # type: ignore[arg-type]


def test_a_partition_not_fetched_yet_has_no_local_answer():
    consumer = FakeConsumer(
        TPS, dict.fromkeys(TPS, 0), {**dict.fromkeys(TPS, 0), TPS[2]: None}, dict.fromkeys(TPS, 5)
    )
    assert _caught_up(consumer, 1) is False  # type: ignore[arg-type]
    assert consumer.end_offsets_asked == [TPS]


def test_partitions_of_other_members_go_by_the_groups_committed_offsets():
    mine = TPS[:1]
    ends = dict.fromkeys(TPS, 10)
    behind = FakeConsumer(mine, {TPS[0]: 10}, {TPS[0]: 10}, ends, committed={TPS[1]: 10, TPS[2]: 9})
    assert _caught_up(behind, 1) is False  # type: ignore[arg-type]
    assert behind.end_offsets_asked == [TPS[1:]]  # not the member's own partition
    done = FakeConsumer(mine, {TPS[0]: 10}, {TPS[0]: 10}, ends, committed={TPS[1]: 10, TPS[2]: 10})
    assert _caught_up(done, 1) is True  # type: ignore[arg-type]


def test_no_partition_held_goes_by_committed_offsets_alone():
    ends = dict.fromkeys(TPS, 4)
    consumer = FakeConsumer([], {}, {}, ends, committed=dict.fromkeys(TPS, 4))
    assert _caught_up(consumer, 1) is True  # type: ignore[arg-type]
    assert consumer.end_offsets_asked == [TPS]
