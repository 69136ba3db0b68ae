"""Run a command to its end while noting every process it starts, for tests that kill it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Mapping, Sequence

import psutil


def run_noting_children(
    command: Sequence[str], env: Mapping[str, str], timeout: float = 120
) -> tuple[int, str, list[psutil.Process]]:
    """Its exit code, standard error and every descendant seen while it ran.

    Polled every 20 ms (a child that lives less than that may be missed; the load's reading process
    lives as long as the load), so the caller can check that none outlives a kill -9 of the command.
    """
    proc = subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(proc.pid)
        while True:
            for child in parent.children(recursive=True):
                seen.setdefault(child.pid, child)
            try:
                proc.wait(timeout=0.02)
                break
            except subprocess.TimeoutExpired:
                continue
    _, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stderr, list(seen.values())
