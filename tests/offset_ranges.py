"""The offset ranges ``load_month`` is told it read, worked out from the records a test hands it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def ranges_of(records: Iterable[Any]) -> dict[int, tuple[int, int]]:
    """Per partition, ``[first offset, last offset + 1)`` of the records (anything with both fields)."""
    ranges: dict[int, tuple[int, int]] = {}
    for r in records:
        start, end = ranges.get(r.partition, (r.offset, r.offset + 1))
        ranges[r.partition] = (min(start, r.offset), max(end, r.offset + 1))
    return ranges
