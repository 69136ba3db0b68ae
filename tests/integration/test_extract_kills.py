"""Extract through the CLI under random SIGKILLs: the raw topic holds each event id once, none lost.

Issue 13 item 1: the probe saw 245 duplicates on raw over 6 killed runs. Here a seeded series of
SIGKILLs lands at random instants inside ``python -m regsync extract``; a clean run then finishes,
and raw (read_committed) is reconciled against the simulator's ground truth.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from schemas.events import RegistrationEvent
from simulators.bianzhi_db import BianzhiDb
from simulators.world import WorldConfig, build_world

TZ = ZoneInfo("Asia/Shanghai")
KILLS = 12


def _env(stack, topics: Topics, database_url: str, source_url: str) -> dict[str, str]:
    # The Kafka login stays (a secure session stack, REGSYNC_TEST_SECURE=1); everything else is explicit.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("REGSYNC_") or k.startswith("REGSYNC_KAFKA__")
    }
    env.update(
        REGSYNC_KAFKA_BOOTSTRAP=stack.bootstrap_servers,
        REGSYNC_REGISTRY_URL=stack.registry_url,
        REGSYNC_DATABASE_URL=database_url,
        REGSYNC_TOPIC_PREFIX=topics.prefix,
        REGSYNC_SOURCES__BIANZHI_URL=source_url,
    )
    return env


class _RawEnd:
    """How many records raw holds now, from one long-lived consumer (cheap enough to poll)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import TopicPartition

        from regsync.kafka import bus

        self.consumer = bus.consumer(bootstrap, component="admin", enable_auto_commit=False)
        self.partitions = [TopicPartition(topic, p) for p in bus.end_offsets(bootstrap, topic)]
        assert self.partitions

    def __call__(self) -> int:
        return sum(self.consumer.end_offsets(self.partitions).values())


def _progress(raw_end: _RawEnd, database_url: str, *, grow: bool) -> Callable[[], bool]:
    """A check that turns true once a new run published (``grow``) or committed its baseline."""
    if grow:
        start = raw_end()
        return lambda: raw_end() != start
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)

    def run_id() -> str | None:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT max(run_id) FROM connector_state")).scalar()

    first = run_id()
    return lambda: run_id() != first


@pytest.mark.slow
def test_random_sigkills_of_the_extract_cli_lose_and_double_nothing(
    stack, uid, database_url, tmp_path, as_components
):
    world = build_world(WorldConfig(institutions_per_month=800))
    sim = BianzhiDb(world, tmp_path / "bianzhi")
    last = world.config.months[-1]
    year, month = (int(x) for x in last.split("-"))
    as_of = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=TZ) + timedelta(days=40)
    sim.publish_until(as_of)
    topics = Topics(prefix=f"t{uid}.")
    as_components(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    env = _env(stack, topics, database_url, sim.url)
    command = [
        sys.executable, "-m", "regsync", "extract", "--source", "bianzhi",
        "--as-of", as_of.isoformat(), "--batch-size", "40",
    ]  # fmt: skip
    raw_end = _RawEnd(stack.bootstrap_servers, topics.raw)
    rng = random.Random(13)
    killed = 0
    try:
        for i in range(KILLS):
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # Alternate the two instants the probe hit: just after this run put something on raw
            # (events ahead of the cursor), and just after its recovery baseline was committed.
            moved = _progress(raw_end, database_url, grow=i % 2 == 0)
            while proc.poll() is None and not moved():
                time.sleep(0.01)
            try:
                proc.wait(timeout=rng.uniform(0.0, 0.25))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            killed += proc.returncode == -signal.SIGKILL
            assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=300)
        assert done.returncode == 0, done.stderr

        codecs = bus.load_codecs(stack.registry_url, topics)
        events = [
            RegistrationEvent.from_avro(codecs.raw.decode(r.value))
            for r in bus.scan(stack.bootstrap_servers, topics.raw, {})
        ]
        ids = Counter(e.event_id for e in events)
        assert max(ids.values()) == 1, f"{sum(c - 1 for c in ids.values())} duplicates on raw"
        truth = {t["event_id"] for t in sim.ground_truth() if t["childcare"]}
        assert set(ids) == truth, f"lost {len(truth - set(ids))}, unexpected {len(set(ids) - truth)}"
        assert killed >= KILLS // 2, "the kills must land while a run is going"
    finally:
        raw_end.consumer.close()
        sim.close()
