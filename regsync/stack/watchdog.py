"""Stop a stack when the process that owns it dies, even by SIGKILL.

pytest fixtures start the stack once per session; if the test runner is killed, its teardown never
runs. This tiny detached process waits for the owner and then runs ``down`` so nothing is left.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from pathlib import Path

import psutil


def spawn_watchdog(owner_pid: int, state_dir: Path, purge: bool) -> int:
    """Start the watchdog detached; returns its PID."""
    cmd = [sys.executable, "-m", "regsync.stack.watchdog", str(owner_pid), str(state_dir)]
    if purge:
        cmd.append("--purge")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return proc.pid


def main() -> None:
    """Wait for the owner, then stop its stack."""
    parser = argparse.ArgumentParser()
    parser.add_argument("owner_pid", type=int)
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--purge", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(args.owner_pid).wait()  # psutil polls a non-child; no busy loop of ours
    from regsync.settings import StackSettings
    from regsync.stack.launcher import Stack

    Stack(StackSettings(state_dir=args.state_dir)).down(purge=args.purge)


if __name__ == "__main__":
    main()
