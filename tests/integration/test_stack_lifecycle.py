"""``regsync stack`` as an operator uses it: up, up again, crash recovery, status, down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from kafka_auth import secure_wanted

pytestmark = pytest.mark.slow

#: ``stack up`` as the session's stack was started: ``--secure`` on a secure session (REGSYNC_TEST_SECURE=1).
UP = ("up", "--secure") if secure_wanted() else ("up",)


def _regsync(state_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGSYNC_STACK__STATE_DIR": str(state_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "regsync", "stack", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _pids(state_dir: Path) -> dict[str, int]:
    data = json.loads((state_dir / "stack.json").read_text())
    return {name: rec["pid"] for name, rec in data["services"].items()}


def _processes_under(state_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line mentions the state folder: what `down` must leave none of."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(str(state_dir) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_up_twice_recover_status_down(tmp_path):
    state_dir = tmp_path / "stack"
    try:
        up = _regsync(state_dir, *UP)
        assert "kafka" in up.stdout and "schema-registry" in up.stdout and "postgres" in up.stdout
        first = _pids(state_dir)
        assert set(first) == {"postgres", "kafka", "schema-registry"}

        # up twice is harmless: the same processes keep running.
        _regsync(state_dir, *UP)
        assert _pids(state_dir) == first

        status = _regsync(state_dir, "status")
        assert status.stdout.count("ready") == 3
        assert "127.0.0.1:" in status.stdout

        # A crashed broker leaves a stale record: status says so, up recovers it.
        os.kill(first["kafka"], signal.SIGKILL)
        psutil.Process(first["kafka"]).wait(30)
        stale = _regsync(state_dir, "status", check=False)
        assert stale.returncode == 1
        recovered = _regsync(state_dir, *UP)
        assert "recovering" in recovered.stderr
        second = _pids(state_dir)
        assert second["kafka"] != first["kafka"]
        assert second["postgres"] == first["postgres"]
        assert _regsync(state_dir, "status").stdout.count("ready") == 3

        down = _regsync(state_dir, "down")
        assert "kafka" in down.stdout
        for pid in second.values():
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert _processes_under(state_dir) == []
        assert json.loads((state_dir / "stack.json").read_text())["services"] == {}
        assert _regsync(state_dir, "status", check=False).returncode == 1
    finally:
        _regsync(state_dir, "down", check=False)


def test_watchdog_stops_the_stack_when_its_owner_is_killed(tmp_path):
    """What keeps a SIGKILLed test session or benchmark from leaving Kafka and PostgreSQL running."""
    from regsync.stack.watchdog import spawn_watchdog

    state_dir = tmp_path / "stack"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        _regsync(state_dir, *UP)
        services = [psutil.Process(pid) for pid in _pids(state_dir).values()]
        watchdog = psutil.Process(spawn_watchdog(owner.pid, state_dir, purge=False))
        assert all(p.is_running() for p in services)

        owner.kill()
        owner.wait(30)
        watchdog.wait(120)  # returns when its `down` is done; fails the test on timeout
        _, alive = psutil.wait_procs(services, timeout=30)
        assert alive == []
        assert _processes_under(state_dir) == []
        assert json.loads((state_dir / "stack.json").read_text())["services"] == {}
    finally:
        owner.kill()
        _regsync(state_dir, "down", check=False)
