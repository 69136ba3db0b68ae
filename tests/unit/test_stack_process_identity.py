"""A service record names one process: a wall-clock step must not lose it, a reused PID must not match.

CI lost a live schema registry this way: psutil's ``create_time()`` moved with the wall clock, ``up``
took the registry for dead and started a second one on the same H2 file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from regsync.stack.process import CLOCK_SLACK_S, ServiceRecord, find, start_ticks


@pytest.fixture
def child() -> Iterator[psutil.Process]:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield psutil.Process(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def _record(proc: psutil.Process) -> ServiceRecord:
    return ServiceRecord.of(proc, name="svc", log="/dev/null")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ticks since boot come from /proc")
def test_the_kernel_start_time_is_read_and_stable(child):
    first = start_ticks(child.pid)
    assert isinstance(first, int) and first > 0
    assert start_ticks(child.pid) == first
    assert start_ticks(2**22 + 12345) is None  # above pid_max: no such process


def test_a_wall_clock_step_does_not_lose_a_live_process(child):
    record = _record(child)
    # What psutil reports after NTP steps the clock by a minute: the recorded wall time is off.
    record.create_time -= 60.0
    if record.start_ticks is None:
        pytest.skip("no tick count on this system: the slack check below covers it")
    assert find(record) is not None


def test_a_reused_pid_does_not_match(child):
    record = _record(child)
    if record.start_ticks is not None:
        record.start_ticks -= 1
    else:
        record.create_time -= 10 * CLOCK_SLACK_S
    assert find(record) is None


def test_an_old_state_file_without_ticks_falls_back_to_wall_time_with_slack(child):
    record = _record(child)
    record.start_ticks = None
    record.create_time -= CLOCK_SLACK_S / 2
    assert find(record) is not None
    record.create_time -= CLOCK_SLACK_S * 2
    assert find(record) is None


def test_a_dead_process_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    record = _record(psutil.Process(proc.pid))
    proc.wait()
    assert find(record) is None
    # State files from before this field still load.
    data = record.to_json()
    del data["start_ticks"]
    assert ServiceRecord.from_json(data).start_ticks is None
