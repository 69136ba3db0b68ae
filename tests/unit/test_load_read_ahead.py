"""The load reads and decodes in a worker thread ahead of the store (ReadAhead): nothing lost, nothing left running."""

from __future__ import annotations

import threading
from collections.abc import Generator

import pytest

from regsync.stages.load import MonthGapError, ReadAhead


def _source(n: int, log: list[str], *, fail: BaseException | None = None) -> Generator[int, None, None]:
    try:
        yield from range(n)
        if fail is not None:
            raise fail
    finally:
        log.append(f"closed in {threading.current_thread().name}")


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "load-read-ahead"]


@pytest.mark.parametrize("n", [0, 1, 499, 500, 501, 2345])
def test_every_item_in_order_then_the_source_is_closed(n: int) -> None:
    log: list[str] = []
    assert list(ReadAhead(_source(n, log), batch=500, depth=2)) == list(range(n))
    assert log == ["closed in load-read-ahead"]
    assert not _workers()


def test_an_error_of_the_source_is_raised_after_the_items_before_it() -> None:
    log: list[str] = []
    error = MonthGapError("2026-02", ["2026-01"])
    got: list[int] = []
    with pytest.raises(MonthGapError) as raised:
        got.extend(ReadAhead(_source(1234, log, fail=error), batch=100))
    assert raised.value is error  # the same object: the CLI maps it to the same exit code
    assert got == list(range(1234))
    assert log == ["closed in load-read-ahead"]


def test_closing_early_stops_the_worker_and_closes_the_source() -> None:
    log: list[str] = []
    ahead = ReadAhead(_source(1_000_000, log), batch=10, depth=2)
    items = iter(ahead)
    assert [next(items) for _ in range(25)] == list(range(25))
    items.close()  # what contextlib.closing does when the store fails mid-month
    assert log == ["closed in load-read-ahead"]
    assert not _workers()


def test_the_worker_stays_a_bounded_distance_ahead() -> None:
    pulled = 0

    def counting() -> Generator[int, None, None]:
        nonlocal pulled
        for i in range(100_000):
            pulled = i + 1
            yield i

    ahead = ReadAhead(counting(), batch=10, depth=3)
    items = iter(ahead)
    next(items)
    for _ in range(500):  # poll (bounded) until the worker is blocked on the full queue
        if ahead._queue.full():
            break
        threading.Event().wait(0.01)
    assert ahead._queue.full()
    # one batch taken by the caller, depth batches queued, one filled in the blocked worker's hand
    assert 40 <= pulled <= 10 * (1 + 3 + 1)
    ahead.close()
    assert not _workers()
