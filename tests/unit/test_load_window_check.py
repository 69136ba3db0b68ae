"""The load refuses a record stamped outside its month inside the month's offset window (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from regsync.kafka.windows import MonthWindow
from regsync.stages.load import TimestampOrderError, in_window
from schemas.errors import FatalError
from sink.loader import PositionedEvent

JAN = MonthWindow(
    "2026-01",
    datetime(2025, 12, 31, 16, tzinfo=UTC),  # 1 January 00:00 in Shanghai
    datetime(2026, 1, 31, 16, tzinfo=UTC),
    {0: (0, 3)},
)


def at(offset: int, moment: datetime) -> PositionedEvent:
    return PositionedEvent(0, offset, int(moment.timestamp() * 1000), None)  # type: ignore[arg-type]


def test_records_inside_the_month_pass_through():
    items = [at(0, JAN.start), at(1, datetime(2026, 1, 31, 15, 59, 59, 999000, tzinfo=UTC))]
    assert list(in_window(items, JAN)) == items


def test_a_record_stamped_before_the_month_inside_its_window_is_refused():
    items = [at(0, JAN.start), at(1, datetime(2025, 12, 20, tzinfo=UTC)), at(2, JAN.start)]
    checked = in_window(items, JAN)
    assert next(checked) == items[0]
    with pytest.raises(TimestampOrderError, match="offset=1") as refused:
        next(checked)
    assert isinstance(refused.value, FatalError)  # a person must look; retrying changes nothing


def test_the_month_end_is_exclusive():
    with pytest.raises(TimestampOrderError):
        list(in_window([at(0, JAN.end)], JAN))
