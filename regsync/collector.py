"""The garbage collector's settings while a stage's hot loop runs (issue 12), one idiom for all stages.

A loop allocates millions of short-lived containers (wire dicts, futures, header lists); each
older-generation collection they trigger would also walk the hundreds of thousands of objects that
imports, the codecs, the division tables and the clients left behind, none of which is garbage.
``gc.freeze`` moves those to the permanent generation for the run (what the CPython docs recommend
for a long-lived steady state), and the youngest generation is collected every 10,000 net
allocations instead of every 700 (a batch's objects mostly die by reference count before that).
The bench figures are in bench/README.md ("extract", "gate").
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG_THRESHOLD = 10_000

_LOCK = threading.Lock()
_RUNS: list[None] = []  # one entry per loop running in this process (stages may run in threads)
_SAVED: list[int] = []  # the collector's thresholds before the first of them
_THAWED: list[bool] = []  # whether nothing was frozen before the first of them


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Freeze what the process holds now and widen the young generation until the last loop ends.

    The first loop in sets, the last one out restores, also when a loop fails. A caller that froze
    objects before the first loop keeps its own freeze (the objects are left in the permanent
    generation); only a freeze made here is undone.
    """
    with _LOCK:
        if not _RUNS:
            _SAVED[:] = gc.get_threshold()
            _THAWED[:] = [gc.get_freeze_count() == 0]
            gc.freeze()
            gc.set_threshold(YOUNG_THRESHOLD, *_SAVED[1:])
        _RUNS.append(None)
    try:
        yield
    finally:
        with _LOCK:
            _RUNS.pop()
            if not _RUNS:
                gc.set_threshold(*_SAVED)
                if _THAWED[0]:
                    gc.unfreeze()
