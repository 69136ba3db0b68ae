"""The high-water-mark cursor every connector shares: ``>=`` with a tie set, read in keyset pages."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["HighWatermark", "watermark_pages"]


@dataclass(frozen=True, slots=True)
class HighWatermark:
    """``cursor_field >= value``, skipping keys already taken at exactly ``value``.

    Reading with ``>=`` instead of ``>`` means a row committed late with the same timestamp as the
    last one we saw is still read; the tie set stops the rows we did see at that value from being
    emitted twice.
    """

    value: str | None = None
    ties: frozenset[str] = frozenset()

    def admits(self, cursor_value: str, key: str) -> bool:
        """Whether a row at ``cursor_value`` with ``key`` is new to us."""
        if self.value is None or cursor_value > self.value:
            return True
        return cursor_value == self.value and key not in self.ties

    def advance(self, cursor_value: str, key: str) -> HighWatermark:
        """The watermark after taking this row (rows must come in cursor order)."""
        if self.value is not None and cursor_value < self.value:
            from connectors.base import FatalSourceError  # the source broke its order: a person must act

            raise FatalSourceError(f"cursor went backwards: {cursor_value!r} < {self.value!r} (key {key})")
        if cursor_value == self.value:
            return HighWatermark(self.value, self.ties | {key})
        return HighWatermark(cursor_value, frozenset({key}))

    def to_state(self) -> dict[str, Any]:
        """JSON-ready form for the state database."""
        return {"value": self.value, "ties": sorted(self.ties)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> HighWatermark:
        """Inverse of :meth:`to_state`; an empty state starts from the beginning."""
        if not state:
            return cls()
        return cls(state.get("value"), frozenset(state.get("ties", ())))


def watermark_pages(
    mark: HighWatermark,
    fetch: Callable[[HighWatermark, int], Iterable[Any]],
    position: Callable[[Any], tuple[str, str]],
    size: int,
) -> Iterator[tuple[list[tuple[Any, str]], HighWatermark]]:
    """Pages of rows new to ``mark`` as ``[(row, cursor_value)]``, each with the watermark after it.

    ``fetch(mark, limit)`` returns at most ``limit`` rows with ``cursor >= mark.value`` in (cursor, key)
    order, e.g. one ``SELECT … ORDER BY … LIMIT``; ``position(row)`` gives its (cursor value, key). It
    is asked for ``size + len(mark.ties)`` rows: only the ties already taken can be skipped, so a page
    is full whenever enough new rows exist and a tie group larger than a page never stalls the read.
    Each page is its own short query, so nothing is held open while the caller publishes.
    """
    while True:
        page: list[tuple[Any, str]] = []
        for row in fetch(mark, size + len(mark.ties)):
            cursor, key = position(row)
            if not mark.admits(cursor, key):
                continue
            mark = mark.advance(cursor, key)
            page.append((row, cursor))
            if len(page) >= size:
                break
        if not page:
            return
        yield page, mark
