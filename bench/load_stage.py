"""The load stage alone, through real Kafka and PostgreSQL, for A/B runs of loader changes.

``prepare`` fills a valid topic (its own prefix) with a synthetic month (:func:`sink.synthetic.synthetic_month`,
encoded with the registered contract) once; ``run`` then loads that month with
:func:`regsync.stages.load.run_load` into a fresh database and prints wall seconds, CPU seconds
(all threads, and the load's reading process once reaped), CPU per event and peak RSS. Run ``run``
from two source trees alternately (``PYTHONPATH=<tree>``, A B A B) on the same topic to compare two
versions of the loader in one sitting on a shared machine; CPU seconds per event is the steadier
figure there, wall time the one users see.

    python -m bench.load_stage prepare --events 100000 --bootstrap … --registry-url … > /tmp/topic.json
    python -m bench.load_stage run --spec /tmp/topic.json --server-url postgresql+psycopg://…/postgres

Not a pass/fail test: it only reports; the counts it checks (records loaded = records produced)
make a broken variant fail loudly instead of looking fast.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import uuid
from typing import Any

MONTH = "2025-03"
PARTITIONS = 6


def prepare(bootstrap: str, registry_url: str, events: int) -> dict[str, Any]:
    """Produce a synthetic month to a fresh valid topic; the spec ``run`` needs."""
    from regsync.kafka import bus
    from regsync.kafka.topics import Topics, ensure_topics
    from sink.synthetic import synthetic_month

    topics = Topics(prefix=f"loadab{uuid.uuid4().hex[:8]}.", partitions=PARTITIONS)
    ensure_topics(bootstrap, topics)
    bus.register_schemas(registry_url, topics)
    codec = bus.load_codecs(registry_url, topics).valid
    producer = bus.idempotent_producer(bootstrap)
    try:
        for rec in synthetic_month(events, partitions=PARTITIONS, seed=7, month=MONTH):
            event = rec.event
            producer.send(
                topics.valid,
                key=event.institution.uscc.encode(),
                value=codec.encode(event.to_avro()),
                partition=rec.partition,
                timestamp_ms=rec.timestamp_ms,
            )
        producer.flush()
    finally:
        producer.close()
    return {"prefix": topics.prefix, "partitions": PARTITIONS, "events": events, "month": MONTH}


def run(
    spec: dict[str, Any],
    bootstrap: str,
    registry_url: str,
    server_url: str,
    chunk_size: int | None = None,
    read_processes: int | None = None,
) -> dict[str, Any]:
    """Load the spec's month into a new database on ``server_url``; wall, CPU and RSS."""
    import importlib

    import sqlalchemy as sa

    from bench.stages import cpu_with_children, own_peak_rss_mib
    from regsync.kafka.topics import Topics
    from regsync.stages.load import run_load

    # What the load imports lazily, imported before the clock starts (as bench.stages does): with
    # PYTHONDONTWRITEBYTECODE compiling them costs seconds, which is no part of loading a month.
    for module in (
        "sink.loader",
        "sink.store",
        "sink.fold",
        "alembic.command",
        "sqlalchemy.dialects.postgresql",
    ):
        importlib.import_module(module)

    name = f"loadab_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        topics = Topics(prefix=spec["prefix"], partitions=spec["partitions"])
        # CPU of this process and of the reaped children (the load's reading process)
        cpu0, wall0 = cpu_with_children(), time.perf_counter()
        result = run_load(
            bootstrap=bootstrap,
            registry_url=registry_url,
            database_url=url,
            topics=topics,
            month=spec["month"],
            allow_unjudged=True,
            allow_gap=True,
            **({} if chunk_size is None else {"chunk_size": chunk_size}),
            **({} if read_processes is None else {"read_processes": read_processes}),
        )
        wall, cpu = time.perf_counter() - wall0, cpu_with_children() - cpu0
        if result.records != spec["events"] or result.inserted != spec["events"]:
            raise RuntimeError(f"loaded {result.records}/{result.inserted} of {spec['events']}")
        engine = sa.create_engine(url)
        with engine.connect() as conn:  # what was stored, so two variants can be compared row for row
            digests = {
                table: conn.execute(
                    sa.text(f"SELECT md5(string_agg(md5(t::text), '' ORDER BY t::text)) FROM {table} t")
                ).scalar_one()
                for table in ("institutions", "institution_events")
            }
        engine.dispose()
        return {
            "events": result.records,
            "seconds": round(wall, 2),
            "events_per_s": round(result.records / wall),
            "cpu_s": round(cpu, 2),
            "cpu_us_per_event": round(1e6 * cpu / result.records, 1),
            # this process's own peak and its largest reading process's (bench.stages.own_peak_rss_mib)
            "peak_rss_mib": round(
                max(own_peak_rss_mib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024), 1
            ),
            "checksum": result.checksum,
            "institutions": result.institutions_touched,
            "stored_md5": digests,
        }
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("prepare", "run"))
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--registry-url", required=True)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--spec", help="the JSON file prepare printed")
    parser.add_argument("--chunk-size", type=int, help="the load's chunk size (default: run_load's)")
    parser.add_argument(
        "--read-processes", type=int, help="the load's reading processes (default: run_load's)"
    )
    parser.add_argument("--server-url", help="a PostgreSQL database to create the run's database from")
    args = parser.parse_args(argv)
    if args.action == "prepare":
        print(json.dumps(prepare(args.bootstrap, args.registry_url, args.events)))
        return 0
    if not args.spec or not args.server_url:
        parser.error("run needs --spec and --server-url")
    with open(args.spec, encoding="utf-8") as fh:
        spec = json.load(fh)
    print(
        json.dumps(
            run(
                spec, args.bootstrap, args.registry_url, args.server_url, args.chunk_size, args.read_processes
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
