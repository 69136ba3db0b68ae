"""How the load picks its month out of a scan and accounts for every other record (issue 16, item 1).

Pure logic over fake records; the real broker is in tests/integration/test_load_interleaved.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from regsync.kafka import windows
from regsync.stages.load import LateRecordError, MonthGapError, Selection
from schemas.errors import EXIT_UNAVAILABLE, RetriableError

TZ = "Asia/Shanghai"
FIRST_FEB = datetime(2026, 1, 31, 16, tzinfo=UTC)  # 1 February 00:00 in Beijing


@dataclass
class Rec:
    partition: int
    offset: int
    timestamp: int
    topic: str = "v"
    key: bytes | None = None
    value: bytes = b""
    headers: list = field(default_factory=list)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


JAN_MS = ms(FIRST_FEB) - 1  # 23:59:59.999 on 31 January, Beijing
FEB_MS = ms(FIRST_FEB)
MAR_MS = ms(datetime(2026, 3, 10, tzinfo=UTC))
DEC_MS = ms(datetime(2025, 12, 10, tzinfo=UTC))


def test_the_month_is_picked_by_timestamp_and_newer_months_pin_the_low_water():
    scan = [Rec(0, 0, FEB_MS), Rec(0, 1, JAN_MS), Rec(0, 2, FEB_MS), Rec(1, 5, MAR_MS), Rec(1, 6, JAN_MS)]
    sel = Selection("2026-01", TZ, {}, {0: 3, 1: 7}, allow_gap=False)
    assert [(r.partition, r.offset) for r in sel.select(scan)] == [(0, 1), (1, 6)]
    assert sel.low_water == {0: 0, 1: 5}  # the first record not loaded after this load


def test_records_of_loaded_months_inside_their_manifest_are_passed_by():
    loaded = {"2025-12": {0: (0, 4)}}
    sel = Selection("2026-01", TZ, loaded, {0: 6}, allow_gap=False)
    picked = list(sel.select([Rec(0, 3, DEC_MS), Rec(0, 4, JAN_MS), Rec(0, 5, JAN_MS)]))
    assert [r.offset for r in picked] == [4, 5]
    assert sel.low_water == {0: 6}  # everything up to the end is loaded once January commits


def test_a_record_of_a_loaded_month_past_its_manifest_is_late():
    loaded = {"2025-12": {0: (0, 4)}}
    sel = Selection("2026-01", TZ, loaded, {0: 6}, allow_gap=False)
    with pytest.raises(LateRecordError, match="offset=5") as late:
        list(sel.select([Rec(0, 4, JAN_MS), Rec(0, 5, DEC_MS)]))
    assert late.value.late_month == "2025-12"
    assert late.value.exit_code == 78  # a person reloads December with --replace


def test_an_older_unloaded_month_is_a_gap_named_after_the_whole_scan():
    scan = [Rec(0, 0, JAN_MS), Rec(0, 1, DEC_MS), Rec(0, 2, FEB_MS)]
    sel = Selection("2026-02", TZ, {}, {0: 3}, allow_gap=False)
    picked: list[Rec] = []
    with pytest.raises(MonthGapError) as gap:
        picked.extend(sel.select(scan))
    assert gap.value.gaps == ["2025-12", "2026-01"]
    assert picked == []  # nothing handed to the loader after a gap was seen


def test_allow_gap_skips_older_records_and_keeps_them_ahead_of_the_low_water():
    sel = Selection("2026-02", TZ, {}, {0: 3}, allow_gap=True)
    assert [r.offset for r in sel.select([Rec(0, 0, FEB_MS), Rec(0, 1, JAN_MS), Rec(0, 2, FEB_MS)])] == [0, 2]
    assert sel.low_water == {0: 1}  # January's record is still to be loaded


class _EmptyMetadata:
    """A consumer whose metadata is empty, as during a broker restart."""

    def __init__(self, answers):
        self.answers = list(answers)

    def partitions_for_topic(self, topic):
        return self.answers.pop(0) if self.answers else None


def test_empty_partition_metadata_is_retriable_not_fatal():
    with pytest.raises(windows.PartitionsUnavailableError) as refused:
        windows.topic_partitions(_EmptyMetadata([]), "registrations.valid", wait_s=0)
    assert isinstance(refused.value, RetriableError)
    assert refused.value.exit_code == EXIT_UNAVAILABLE  # 69: Airflow and cron retry it


def test_partitions_that_come_back_are_used():
    found = windows.topic_partitions(_EmptyMetadata([None, set(), {1, 0}]), "t", wait_s=5)
    assert [tp.partition for tp in found] == [0, 1]
