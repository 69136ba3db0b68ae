"""A/B of the monthly load's month selection: this tree against another source tree (e.g. ``main``).

Writes one month of synthetic events to a fresh valid topic (timestamps inside January, in offset
order, so the old binary-search window works too), optionally a tail of February records after it,
then times ``run_load`` of January in a fresh database per run, interleaving A and B. Each run is its
own interpreter started in the variant's source folder, so each imports its own ``regsync``.

    git archive main | tar -x -C /tmp/old
    .venv/bin/python -m bench.load_ab --state-dir /tmp/shared/stack --old-src /tmp/old --events 20000 --tail 20000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.source import synthetic_events
from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.settings import StackSettings
from regsync.stack.launcher import Stack

HERE = Path(__file__).resolve().parent.parent
JAN = datetime(2026, 1, 10, tzinfo=UTC)
FEB = datetime(2026, 2, 10, tzinfo=UTC)

RUN = """
import json, time
from datetime import datetime, timezone
from regsync.kafka.topics import Topics
from regsync.stages.load import run_load
t = time.perf_counter()
r = run_load(bootstrap={bootstrap!r}, registry_url={registry!r}, database_url={db!r},
             topics=Topics(prefix={prefix!r}), month="2026-01",
             as_of=datetime(2026, 3, 1, tzinfo=timezone.utc), allow_unjudged=True)
print(json.dumps({{"seconds": time.perf_counter() - t, "records": r.records}}))
"""


def _write(bootstrap: str, registry: str, topics: Topics, n: int, tail: int) -> None:
    codec = bus.load_codecs(registry, topics).valid
    producer = bus.idempotent_producer(bootstrap)
    for i, event in enumerate(synthetic_events(n + tail, month="2026-01", seed=7)):
        at = JAN + timedelta(milliseconds=i) if i < n else FEB + timedelta(milliseconds=i)
        producer.send(
            topics.valid,
            key=event.kafka_key,
            value=codec.encode(event.to_avro()),
            timestamp_ms=int(at.timestamp() * 1000),
        )
    producer.flush()
    producer.close()


def _one(src: Path, bootstrap: str, registry: str, admin_url: str, prefix: str) -> dict[str, float]:
    name = f"ab_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        script = RUN.format(bootstrap=bootstrap, registry=registry, db=db, prefix=prefix)
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=src, env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    """Parse the arguments, write the topic once, run A and B alternately, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="a running stack's state folder")
    parser.add_argument("--old-src", type=Path, required=True)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tail", type=int, default=0, help="February records after January's")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    ends = Stack(StackSettings(state_dir=args.state_dir)).up()  # reuses a running stack
    assert ends.database_url is not None
    topics = Topics(prefix=f"ab{uuid.uuid4().hex[:8]}.")
    ensure_topics(ends.bootstrap_servers, topics)
    bus.register_schemas(ends.registry_url, topics)
    _write(ends.bootstrap_servers, ends.registry_url, topics, args.events, args.tail)
    figures: dict[str, list[dict[str, float]]] = {"new": [], "old": []}
    for _ in range(args.rounds):
        for label, src in (("old", args.old_src.resolve()), ("new", HERE)):
            figures[label].append(
                _one(src, ends.bootstrap_servers, ends.registry_url, ends.database_url, topics.prefix)
            )
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events": args.events,
        "tail": args.tail,
        "runs": figures,
    }
    for label, runs in figures.items():
        print(label, [f"{r['seconds']:.1f}s/{int(r['records'])}" for r in runs])
    out = HERE / "bench" / "results" / f"load_ab-{args.events}-{args.tail}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
