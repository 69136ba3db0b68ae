"""Start detached service processes and stop exactly those we started.

A PID alone is not an identity (PIDs are reused), so each record keeps the process's start time;
``down`` only signals a process whose PID *and* start time still match.

The start time compared is the kernel's, in clock ticks since boot (``/proc/<pid>/stat``), not
psutil's ``create_time()``: psutil 7 adds a fresh ``boot_time()`` to it on every call, and ``btime``
moves whenever NTP adjusts the wall clock, so a live service looked "gone" and ``up`` started a
second registry beside it (psutil issues 2526 and 2541).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from regsync.stack.errors import ServiceStartError


@dataclass(slots=True)
class ServiceRecord:
    """What ``stack.json`` remembers about one running service."""

    name: str
    pid: int
    create_time: float
    log: str
    endpoints: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: Start in clock ticks since boot (Linux); None on other systems and in older state files.
    start_ticks: int | None = None

    @classmethod
    def of(cls, proc: psutil.Process, **fields: Any) -> ServiceRecord:
        """A record of ``proc`` with both of its start times taken now."""
        return cls(pid=proc.pid, create_time=proc.create_time(), start_ticks=start_ticks(proc.pid), **fields)

    def to_json(self) -> dict[str, Any]:
        """Plain dict for the state file."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceRecord:
        """Inverse of :meth:`to_json`."""
        return cls(**dict(data))


def free_port(avoid: set[int] | None = None) -> int:
    """A loopback port nobody listens on right now (the caller retries if it loses the race)."""
    avoid = avoid or set()
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise RuntimeError("no free loopback port")


def port_is_free(port: int) -> bool:
    """True when nothing is bound to 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spawn(
    cmd: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> psutil.Process:
    """Start ``cmd`` in its own session so it outlives the CLI, with stdout/stderr in ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            user=user,
        )
    return psutil.Process(proc.pid)


#: How far two wall-clock readings of one process's creation time may drift apart (clock steps),
#: used only where the kernel's tick count is not available.
CLOCK_SLACK_S = 2.0


def start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``: when the process started, in ticks since boot.

    Read by hand because psutil exposes it only through a private argument; None off Linux.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return int(fields[19])


def find(record: ServiceRecord) -> psutil.Process | None:
    """The live process a record describes, or None if it is gone (or its PID was reused)."""
    try:
        proc = psutil.Process(record.pid)
        ticks = start_ticks(record.pid) if record.start_ticks is not None else None
        if ticks is not None:
            if ticks != record.start_ticks:
                return None
        elif abs(proc.create_time() - record.create_time) > CLOCK_SLACK_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def stop(record: ServiceRecord, timeout: float = 30.0) -> bool:
    """SIGTERM, wait, then SIGKILL. True if a process of ours was running."""
    proc = find(record)
    if proc is None:
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return True


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, for error messages."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    service: str,
    probe: Callable[[], bool],
    *,
    proc: psutil.Process | None,
    log_path: Path,
    timeout: float,
) -> float:
    """Poll ``probe`` until it answers True; fail fast if the process died. Returns seconds waited.

    Polling a readiness probe is the readiness check; the short pause between probes only avoids
    spinning a core while the JVM boots.
    """
    started = time.monotonic()
    delay = 0.05
    while True:
        if proc is not None and (not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE):
            raise ServiceStartError(service, "the process exited during start", tail(log_path))
        try:
            if probe():
                return time.monotonic() - started
        except Exception:
            pass
        if time.monotonic() - started > timeout:
            raise ServiceStartError(service, f"not ready after {timeout:.0f}s", tail(log_path))
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
