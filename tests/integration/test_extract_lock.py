"""One source, one running extract (issue 13 item 2), with two real processes on the real stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics

HERE = Path(__file__).parent


@pytest.fixture
def pipeline(stack, uid, database_url, as_components):
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    return {"stack": stack, "database_url": database_url, "topics": topics}


def _script(p, gate: Path | None) -> str:
    """An extract of the list source; with ``gate`` it signals ``gate.started`` and waits for ``gate``."""
    return textwrap.dedent(
        f"""
        import time
        from datetime import datetime, timezone
        from pathlib import Path
        from listsource import ListConnector, rows
        from regsync.kafka.topics import Topics
        from regsync.stages.extract import run_extract

        class Held(ListConnector):
            def batches(self, state, ctx):
                gate = {str(gate) if gate else None!r}
                if gate:
                    Path(gate + ".started").touch()
                    while not Path(gate).exists():
                        time.sleep(0.01)
                yield from super().batches(state, ctx)

        run_extract(
            Held(rows(12)),
            bootstrap={p["stack"].bootstrap_servers!r},
            registry_url={p["stack"].registry_url!r},
            database_url={p["database_url"]!r},
            topics=Topics(prefix={p["topics"].prefix!r}),
            as_of=datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc),
            batch_size=4,
        )
        """
    )


def _start(script: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("REGSYNC_CRASH_AT", None)
    return subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen) -> None:
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)


def _ids(p) -> Counter:
    return Counter(
        bus.header(r, bus.HEADER_EVENT_ID)
        for r in bus.scan(p["stack"].bootstrap_servers, p["topics"].raw, {})
    )


def test_a_second_extract_of_the_same_source_is_refused_in_one_line(pipeline, tmp_path):
    gate = tmp_path / "go"
    holder = _start(_script(pipeline, gate))
    try:
        _wait_for(Path(f"{gate}.started"), holder)  # the holder is inside its run, lock taken
        second = _start(_script(pipeline, None))
        assert second.wait(timeout=60) != 0
        last = second.stderr.read().strip().splitlines()[-1]
        assert "SourceBusyError" in last
        assert "'listsource' is already being extracted by run extract-listsource-" in last
        assert f"pid {holder.pid} on " in last
    finally:
        gate.touch()
    assert holder.wait(timeout=120) == 0, holder.stderr.read()
    ids = _ids(pipeline)
    assert len(ids) == 12
    assert max(ids.values()) == 1


@pytest.mark.slow
def test_a_sigkilled_holder_does_not_block_the_next_run(pipeline, tmp_path):
    gate = tmp_path / "go"
    holder = _start(_script(pipeline, gate))
    _wait_for(Path(f"{gate}.started"), holder)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    after = _start(_script(pipeline, None))
    assert after.wait(timeout=120) == 0, after.stderr.read()
    assert len(_ids(pipeline)) == 12
