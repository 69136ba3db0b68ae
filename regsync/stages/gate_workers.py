"""N gate workers in one consumer group: the gate's scale-out, one process per worker.

Each worker is ``regsync gate --instance i`` in its own interpreter (the gate is CPU-bound Python, so
threads would share one core): a static group member (``group.instance.id`` ``gate-<i>``) with its own
transactional id, so a killed worker's restart takes its partitions back at once and fences the
killed transaction. Exactly-once holds per raw record whatever the number of workers: every output
and its raw offset commit are one Kafka transaction. More workers than raw partitions idle.

Long-running replicas that cannot be told their index (Compose's ``deploy.replicas`` gives every
replica the same command and environment) claim one with :func:`claim_instance` instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regsync.bookkeeping.locks import LockBusyError, advisory_lock
from schemas.errors import RetriableError

__all__ = ["AllInstancesTakenError", "WorkerExit", "claim_instance", "default_workers", "run_gate_workers"]


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """How one worker ended (negative return codes are signals, as ``subprocess`` reports them).

    ``counts`` is the worker's :class:`~regsync.stages.gate.GateCounts` as a mapping when it finished
    and was asked to report them, else None.
    """

    instance: int
    returncode: int
    counts: Mapping[str, Any] | None = None


class AllInstancesTakenError(RetriableError):
    """Every gate instance slot is held by a live replica: more replicas than slots."""


def default_workers(partitions: int, cpus: int | None = None) -> int:
    """As many workers as cores, but no more than raw has partitions (the rest would idle)."""
    return max(1, min(cpus if cpus is not None else (os.cpu_count() or 1), partitions))


def run_gate_workers(
    workers: int,
    *,
    until_idle: bool = True,
    first_instance: int = 0,
    env: Mapping[str, str] | None = None,
    report_counts: bool = False,
    claim: bool = False,
) -> list[WorkerExit]:
    """Start ``workers`` gate processes and wait for all of them; Ctrl-C stops them all.

    The children inherit the environment (settings come from it) with ``env`` laid over it, so they
    judge the same topics into the same group. Bounded runs (``until_idle``) end when every
    partition of raw is judged, whichever member held it. With ``report_counts`` each worker writes
    its counts to a file of its own, read back into :attr:`WorkerExit.counts`. With ``claim`` each
    worker claims a free instance below ``workers`` (:func:`claim_instance`) instead of being given
    one, so a bounded run never shares an instance with long-running replicas or another run: it
    fails (retriable) instead; :attr:`WorkerExit.instance` is then the worker's index.
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    mode = "--until-idle" if until_idle else "--forever"
    with tempfile.TemporaryDirectory(prefix="regsync-gate-workers-") as tmp:
        summaries = [Path(tmp) / f"worker-{first_instance + i}.json" for i in range(workers)]
        procs = []
        for i in range(workers):
            who = ["--slots", str(workers)] if claim else ["--instance", str(first_instance + i)]
            cmd = [sys.executable, "-m", "regsync", "gate", *who, mode]
            if report_counts:
                cmd += ["--summary-json", str(summaries[i])]
            procs.append(
                subprocess.Popen(
                    cmd,
                    env={**os.environ, **(env or {}), "REGSYNC_GATE_WORKER": str(first_instance + i)},
                )
            )
        try:
            codes = [p.wait() for p in procs]
        except BaseException:
            _stop(procs)
            raise
        return [
            WorkerExit(first_instance + i, code, _read_counts(summaries[i]) if code == 0 else None)
            for i, code in enumerate(codes)
        ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGINT every live worker (each aborts its open transaction), then SIGKILL the ones that hang."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _read_counts(path: Path) -> Mapping[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextmanager
def claim_instance(database_url: str, group_id: str, slots: int) -> Iterator[int]:
    """Hold the lowest free gate instance number below ``slots`` for the block.

    Compose starts every replica of a service with the same command and environment, and a
    replica's hostname is its container id, which changes when the container is re-created: neither
    gives an index that is distinct and stable. The index is taken from PostgreSQL instead: one
    session advisory lock per slot (``regsync.gate.instance:<group>:<i>``). The server drops the lock
    when the holder's session ends, so a killed replica's slot — its transactional id and static
    member id — is free for its restart, and two live processes can never hold the same slot (which
    would fence each other in a loop). Raises :class:`AllInstancesTakenError` (exit 75, the restart
    policy tries again) when every slot is held. SQLite has no advisory locks: slot 0 is returned.
    """
    if slots < 1:
        raise ValueError("slots must be >= 1")
    for instance in range(slots):
        stack = ExitStack()
        try:
            stack.enter_context(advisory_lock(database_url, f"regsync.gate.instance:{group_id}:{instance}"))
        except LockBusyError:
            stack.close()
            continue
        with stack:
            yield instance
        return
    raise AllInstancesTakenError(
        f"gate: all {slots} instance slots of {group_id} are held by live replicas",
        hint="run no more gate replicas than --slots (REGSYNC_GATE__REPLICAS in compose)",
    )
