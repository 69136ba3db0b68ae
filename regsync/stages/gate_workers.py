"""N gate workers in one consumer group: the gate's scale-out, one process per worker.

Each worker is ``regsync gate --instance i`` in its own interpreter (the gate is CPU-bound Python, so
threads would share one core): a static group member (``group.instance.id`` ``gate-<i>``) with its own
transactional id, so a killed worker's restart takes its partitions back at once and fences the
killed transaction. Exactly-once holds per raw record whatever the number of workers: every output
and its raw offset commit are one Kafka transaction. More workers than raw partitions idle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["WorkerExit", "run_gate_workers"]


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """How one worker ended (negative return codes are signals, as ``subprocess`` reports them)."""

    instance: int
    returncode: int


def run_gate_workers(workers: int, *, until_idle: bool = True, first_instance: int = 0) -> list[WorkerExit]:
    """Start ``workers`` gate processes and wait for all of them; Ctrl-C stops them all.

    The children inherit the environment (settings come from it), so they judge the same topics
    into the same group. Bounded runs (``until_idle``) end when every partition of raw is judged,
    whichever member held it.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    mode = "--until-idle" if until_idle else "--forever"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "regsync", "gate", "--instance", str(first_instance + i), mode],
            env={**os.environ, "REGSYNC_GATE_WORKER": str(first_instance + i)},
        )
        for i in range(workers)
    ]
    try:
        return [WorkerExit(first_instance + i, p.wait()) for i, p in enumerate(procs)]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
