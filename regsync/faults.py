"""Named crash points for fault tests: the process kills itself with SIGKILL at an exact step.

``REGSYNC_CRASH_AT=extract.after_ack:2`` kills the process the second time it passes the point
``extract.after_ack``. SIGKILL runs no cleanup, so the tests see exactly what a power cut or an
OOM kill leaves behind. Unset (always, in production), a crash point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_hits: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die here if ``REGSYNC_CRASH_AT`` names this point and its hit count is reached."""
    spec = os.environ.get("REGSYNC_CRASH_AT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
