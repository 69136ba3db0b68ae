"""Run a command to its end while noting every process it starts, for tests that kill it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence

import psutil


def run_noting_children(
    command: Sequence[str], env: Mapping[str, str], timeout: float = 120
) -> tuple[int, str, list[psutil.Process], dict[int, str]]:
    """Its exit code, standard error, every descendant seen while it ran and their command lines.

    Polled every 20 ms (a child that lives less than that may be missed; the load's reading
    processes live as long as the load), so the caller can check that none outlives a kill -9 of
    the command. A command line is the last one read while the child ran: read after the kill, a
    dying process's can come back empty, and one read between fork and exec is the parent's.
    """
    proc = subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: dict[int, psutil.Process] = {}
    cmdlines: dict[int, str] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(proc.pid)
        while True:
            for child in parent.children(recursive=True):
                seen.setdefault(child.pid, child)
                with contextlib.suppress(psutil.Error):
                    if line := " ".join(child.cmdline()):
                        cmdlines[child.pid] = line
            try:
                proc.wait(timeout=0.02)
                break
            except subprocess.TimeoutExpired:
                continue
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr, list(seen.values()), cmdlines
