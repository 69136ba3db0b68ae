"""Which records of the valid topic a monthly load takes, and what it says of the others.

Its own module because both sides of the load use it: the reading process
(:mod:`regsync.stages.load_reader`) selects, and :mod:`regsync.stages.load` re-exports the errors
for its callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime

from regsync.kafka.bus import KafkaRecord
from schemas.errors import FatalError, RetriableError
from schemas.month import Month

__all__ = ["LateRecordError", "MonthGapError", "Selection"]


class LateRecordError(FatalError):
    """A record pushed in a month that was loaded before the record reached the topic.

    Its month's manifest ends before its offset, so that load never saw it, and loading on would
    leave it out of every month. Usually the month was loaded while still open
    (``--allow-open-month``) or an extraction was re-run with an older as-of. Refused in the load's
    transaction, so nothing is stored; reloading the month with ``--replace`` takes it in.
    """

    def __init__(self, month: str, late_month: str, partition: int, offset: int, pushed_at: datetime) -> None:
        super().__init__(
            f"month {month}: {partition=} {offset=} was pushed at {pushed_at.isoformat()} (month {late_month}), "
            f"after {late_month} was loaded",
            hint=f"reload it: regsync load --month {late_month} --replace (see docs/operations.md)",
        )
        self.late_month = late_month


class MonthGapError(RetriableError):
    """An older month with records on the valid topic is not loaded yet: months load oldest first.

    Retriable because the usual cause is a backfill of the older month still running beside this
    run; a month that was really skipped needs a person (load it, or ``--allow-gap``).
    """

    def __init__(self, month: str, gaps: list[str]) -> None:
        super().__init__(
            f"month {month}: older month(s) {', '.join(gaps)} have records on the valid topic but are not "
            "loaded; months load oldest first",
            hint=f"load {gaps[0]} first (a backfill of it may still be running), or pass --allow-gap",
        )
        self.gaps = gaps


class Selection:
    """Pick month M's records out of a scan, and account for every other record it passes.

    ``loaded`` maps each loaded month to its manifest's per-partition ``[start, end)`` offsets. A
    record of another month is loaded when its offset lies before that month's manifest end, a gap
    when its month is older than M and not loaded, late when its month was loaded before it
    arrived, and otherwise (a newer month) left for later. ``low_water`` ends as, per partition,
    the first offset holding a record not loaded now — where the next load must start.
    """

    def __init__(
        self,
        month: str,
        tz: str,
        loaded: Mapping[str, Mapping[int, tuple[int, int]]],
        ends: Mapping[int, int],
        *,
        allow_gap: bool,
    ) -> None:
        start, end = Month.parse(month).bounds(tz)
        self.month, self.tz, self.loaded, self.allow_gap = month, tz, loaded, allow_gap
        self._bounds = (int(start.timestamp() * 1000), int(end.timestamp() * 1000))
        self.low_water = dict(ends)
        self.gaps: set[str] = set()
        self.selected = 0

    def _month_of(self, timestamp_ms: int) -> str:
        return str(Month.of(datetime.fromtimestamp(timestamp_ms / 1000, UTC), self.tz))

    def _pin(self, record: KafkaRecord) -> None:
        self.low_water[record.partition] = min(self.low_water[record.partition], record.offset)

    def classify(self, record: KafkaRecord) -> bool:
        """True when the record is M's; raises :class:`LateRecordError` on a late one."""
        lo, hi = self._bounds
        if lo <= record.timestamp < hi:
            return True
        other = self._month_of(record.timestamp)
        manifest = self.loaded.get(other)
        if manifest is not None:
            if record.offset < manifest.get(record.partition, (0, 0))[1]:
                return False  # loaded with its month
            pushed = datetime.fromtimestamp(record.timestamp / 1000, UTC)
            raise LateRecordError(self.month, other, record.partition, record.offset, pushed)
        self._pin(record)  # its month is not loaded: the next load starts no later than here
        if other < self.month and not self.allow_gap:
            self.gaps.add(other)
        return False

    def select(self, records: Iterable[KafkaRecord]) -> Iterator[KafkaRecord]:
        """M's records in scan order; at the end, :class:`MonthGapError` if an older month is unloaded.

        After the first gap nothing more is handed on (the load's work would be rolled back anyway),
        but the scan goes on so the error names every unloaded older month.
        """
        for record in records:
            if self.classify(record) and not self.gaps:  # M's: loaded once this load commits
                self.selected += 1
                yield record
        if self.gaps:
            raise MonthGapError(self.month, sorted(self.gaps))
