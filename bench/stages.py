"""One benchmark stage in a process of its own, so its peak memory is its own.

``python -m bench.stages '<json config>'`` runs one stage against a running stack and writes its
figures as JSON to ``config["out"]``; progress lines go to stderr. The parent (:mod:`bench.run`)
reads the child's peak RSS and CPU time from ``wait4``. Stages:

* ``extract`` — :func:`regsync.stages.extract.run_extract` over :class:`bench.source.SyntheticConnector`;
* ``gate`` — :func:`regsync.stages.gate.run_gate` until idle (real Kafka transactions);
* ``load`` — :func:`regsync.stages.load.run_load` of the month into PostgreSQL;
* ``raw_consume`` — the transport limit, reading: a bare ``KafkaConsumer`` over the raw topic;
* ``raw_produce`` — the transport limit, writing: the raw topic's own records (key, value, headers)
  sent again with the same producer settings as extract (``acks=all``, idempotence, linger, batch);
* ``copy`` — the storage limit: the rows the load wrote, ``COPY … FROM STDIN`` into tables made
  ``LIKE`` the store's (same columns, keys and indexes).

With ``config["profile"]`` set, the stage runs under cProfile and the stats are dumped there.
"""

from __future__ import annotations

import cProfile
import importlib
import json
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Figures = dict[str, Any]


class Ticker:
    """Prints ``[label] done/total (rate/s)`` to stderr at most every ``every`` seconds."""

    def __init__(self, label: str, total: int, every: float = 3.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.began = self.last = time.perf_counter()

    def __call__(self, done: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every:
            return
        self.last = now
        elapsed = max(now - self.began, 1e-9)
        share = f" {100 * done / self.total:5.1f}%" if self.total else ""
        print(
            f"  [{self.label}] {done:>11,} / {self.total:,}{share}  {done / elapsed:>9,.0f}/s  {elapsed:6.1f}s",
            file=sys.stderr,
            flush=True,
        )


def _warm(*modules: str) -> None:
    """Import what a stage would import lazily, so its timed section measures work, not compiling."""
    for name in modules:
        importlib.import_module(name)


def _topics(cfg: Figures) -> Any:
    from regsync.kafka.topics import Topics

    return Topics(prefix=cfg["prefix"], partitions=cfg["partitions"])


def _as_of(cfg: Figures) -> datetime:
    return datetime.fromisoformat(cfg["as_of"]).astimezone(UTC)


def _bookkeeping_ready(database_url: str) -> None:
    """The pipeline's tables at head before the clock starts, as ``regsync init`` leaves a deployment.

    Each scenario has a fresh database, so the first ``StateStore`` would otherwise run the whole
    Alembic history inside the timed section (≈ 0.3 s CPU: 6 µs an event at 50,000). The upgrade is
    remembered per process and URL (:func:`regsync.bookkeeping.migrate.ensure`), as in a worker
    that runs many extracts.
    """
    import sqlalchemy as sa

    from regsync.bookkeeping.migrate import ensure

    engine = sa.create_engine(database_url)
    try:
        ensure(engine)
    finally:
        engine.dispose()


def extract(cfg: Figures) -> Figures:
    """Synthetic registrar → ``registrations.raw`` through ``run_extract``."""
    from bench.source import SyntheticConnector
    from regsync.stages.extract import run_extract

    _warm("regsync.stages.extract", "connectors.base", "sqlalchemy.dialects.postgresql")
    _bookkeeping_ready(cfg["database_url"])

    connector = SyntheticConnector(cfg["events"], month=cfg["month"], seed=cfg["seed"])
    tick = Ticker(cfg["label"], cfg["events"])
    began, began_cpu = time.perf_counter(), time.process_time()
    summary = run_extract(
        connector,
        bootstrap=cfg["bootstrap"],
        registry_url=cfg["registry_url"],
        database_url=cfg["database_url"],
        topics=_topics(cfg),
        as_of=_as_of(cfg),
        batch_size=cfg.get("batch_size", 500),
        progress=lambda _batch, counts: tick(counts.published),
    )
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    tick(summary.published, force=True)
    return {
        "events": summary.published,
        "seconds": seconds,
        "source_seconds": connector.source_seconds,
        "timed_cpu_s": cpu,  # every thread of the process (the producer's sender included)
        "source_cpu_s": connector.source_cpu_seconds,
        "invalid": summary.invalid,
    }


def gate(cfg: Figures) -> Figures:
    """``registrations.raw`` → valid | rejected through ``run_gate`` until idle."""
    from regsync.stages.gate import run_gate

    # The bookkeeping's migration check imports Alembic (with Mako and Pygments) and psycopg inside
    # StateStore(): ≈ 0.5 s in the timed section where PYTHONDONTWRITEBYTECODE is set (every process
    # compiles them), none of it judging. Imported before the clock, as the extract stage does.
    _warm(
        "regsync.stages.gate",
        "quality.record_checks",
        "sqlalchemy.dialects.postgresql",
        "regsync.bookkeeping.migrate",
        "psycopg",
    )
    tick = Ticker(cfg["label"], cfg["events"])
    began_at = time.time()  # wall clock, comparable across processes: the span of N gate workers
    began, cpu_began = time.perf_counter(), time.process_time()
    counts = run_gate(
        bootstrap=cfg["bootstrap"],
        registry_url=cfg["registry_url"],
        database_url=cfg["database_url"],
        topics=_topics(cfg),
        group_id=cfg.get("group_id"),
        instance=cfg.get("instance", 0),
        until_idle=True,
        max_records=cfg.get("max_records", 2000),
        progress=lambda c: tick(c.consumed),
    )
    seconds = time.perf_counter() - began
    loop_cpu_s = time.process_time() - cpu_began  # every thread of the process, the timed section only
    ended_at = time.time()
    tick(counts.consumed, force=True)
    return {
        "events": counts.consumed,
        "began_at": began_at,
        "ended_at": ended_at,
        "loop_cpu_s": loop_cpu_s,
        "valid": counts.valid,
        "rejected": counts.rejected,
        "transactions": counts.transactions,
        "by_rule": counts.by_rule,
        "seconds": seconds,
    }


def load(cfg: Figures) -> Figures:
    """The month of ``registrations.valid`` → the filing store through ``run_load``."""
    import regsync.stages.load as load_module

    _warm("sink.loader", "sink.store", "sink.fold", "alembic.command", "sqlalchemy.dialects.postgresql")
    tick = Ticker(cfg["label"], cfg.get("expected", cfg["events"]))
    began, began_cpu = time.perf_counter(), cpu_with_children()
    result: Any = load_module.run_load(
        bootstrap=cfg["bootstrap"],
        registry_url=cfg["registry_url"],
        database_url=cfg["database_url"],
        topics=_topics(cfg),
        month=cfg["month"],
        tz="Asia/Shanghai",
        progress=lambda at: tick(at.stored),
        **({"read_processes": int(cfg["read_processes"])} if "read_processes" in cfg else {}),
    )
    seconds, cpu = time.perf_counter() - began, cpu_with_children() - began_cpu
    tick(result.records, force=True)
    return {
        "events": result.inserted,
        "records": result.records,
        "duplicates": result.duplicates,
        "institutions": result.institutions_touched,
        "late": result.late,
        "seconds": seconds,
        # every thread, and the reading processes (reaped before run_load returns)
        "timed_cpu_s": cpu,
    }


def cpu_with_children() -> float:
    """User + system seconds of this process and of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def raw_consume(cfg: Figures) -> Figures:
    """A bare consumer reads the raw topic from the start: records and bytes, nothing decoded."""
    from kafka import KafkaConsumer, TopicPartition

    topic = _topics(cfg).raw
    consumer = KafkaConsumer(
        bootstrap_servers=cfg["bootstrap"],
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=2000,
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        total = sum(ends.values())
        tick = Ticker(cfg["label"], total)
        records = size = 0
        began = time.perf_counter()
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                records += len(batch)
                for record in batch:
                    size += len(record.value) + len(record.key or b"")
            tick(records)
        seconds = time.perf_counter() - began
    finally:
        consumer.close()
    tick(records, force=True)
    return {"events": records, "seconds": seconds, "mean_record_bytes": size / max(records, 1)}


def raw_produce(cfg: Figures) -> Figures:
    """The raw topic's own records sent again, ``events`` of them, with extract's producer settings."""
    from kafka import KafkaConsumer, TopicPartition

    from regsync.kafka import bus

    topics = _topics(cfg)
    sample: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
    consumer = KafkaConsumer(bootstrap_servers=cfg["bootstrap"], enable_auto_commit=False)
    try:
        tps = [TopicPartition(topics.raw, p) for p in sorted(consumer.partitions_for_topic(topics.raw) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while len(sample) < 2000:
            polled = consumer.poll(timeout_ms=2000)
            if not polled:
                break
            sample += [(r.key, r.value, list(r.headers)) for b in polled.values() for r in b]
    finally:
        consumer.close()
    if not sample:
        raise RuntimeError(f"no records on {topics.raw} to take payloads from")
    n = cfg["events"]
    target = cfg["baseline_topic"]
    errors: list[BaseException] = []
    tick = Ticker(cfg["label"], n)
    producer = bus.idempotent_producer(cfg["bootstrap"])
    timestamp_ms = int(_as_of(cfg).timestamp() * 1000)
    began, began_cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        key, value, headers = sample[i % len(sample)]
        producer.send(target, key=key, value=value, headers=headers, timestamp_ms=timestamp_ms).add_errback(
            errors.append
        )
        if i % 5000 == 0:
            tick(i)
    producer.flush()
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    producer.close()
    if errors:
        raise RuntimeError(f"{len(errors)} sends failed, first: {errors[0]!r}")
    tick(n, force=True)
    mean = sum(len(v) + len(k or b"") for k, v, _ in sample) / len(sample)
    return {"events": n, "seconds": seconds, "timed_cpu_s": cpu, "mean_record_bytes": mean}


def copy(cfg: Figures) -> Figures:
    """The rows the load wrote (events and roster), COPY'd into tables ``LIKE`` the store's."""
    import psycopg

    url = cfg["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    tables = ("institution_events", "institutions")
    figures: Figures = {}
    with tempfile.TemporaryDirectory(prefix="regsync-bench-copy-") as tmp, psycopg.connect(url) as conn:
        files = {}
        for table in tables:  # export: not timed
            files[table] = Path(tmp) / f"{table}.copy"
            with files[table].open("wb") as out, conn.cursor().copy(f"COPY {table} TO STDOUT") as cp:
                for block in cp:
                    out.write(block)
            conn.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
            conn.execute(f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING ALL)")
        conn.commit()
        rows = conn.execute("SELECT count(*) FROM institution_events").fetchone()
        events = int(rows[0]) if rows else 0
        tick = Ticker(cfg["label"], events)
        began = time.perf_counter()
        for table in tables:
            written = 0
            with (
                files[table].open("rb") as source,
                conn.cursor().copy(f"COPY bench_copy_{table} FROM STDIN") as cp,
            ):
                while block := source.read(1 << 20):
                    cp.write(block)
                    written += len(block)
            figures[f"{table}_mib"] = round(written / 2**20, 1)
            tick(events if table == tables[-1] else 0)
        conn.commit()
        seconds = time.perf_counter() - began
        for table in tables:
            conn.execute(f"DROP TABLE bench_copy_{table}")
        conn.commit()
    tick(events, force=True)
    return {"events": events, "seconds": seconds, **figures}


STAGES: dict[str, Callable[[Figures], Figures]] = {
    "extract": extract,
    "gate": gate,
    "load": load,
    "raw_consume": raw_consume,
    "raw_produce": raw_produce,
    "copy": copy,
}


def own_peak_rss_mib() -> float:
    """This process's own peak RSS since its ``exec`` (``VmHWM``), in MiB.

    Why not ``ru_maxrss`` as the parent's ``wait4`` gives it: Linux carries the peak of the memory
    image an ``exec`` replaces into the new program's ``ru_maxrss``, and ``subprocess`` starts
    children with ``vfork``, whose image is the parent's — so every stage reported at least the
    peak of ``bench.run`` itself (142 MiB for four different stages at 1M on 2026-12-05).
    """
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_peak_rss_mib(figures: Figures, usage: resource.struct_rusage) -> float:
    """A stage's peak RSS from what it reported (:func:`main`), popping those two figures.

    Its own peak and that of the largest child it reaped (the load's reading processes, the
    Connect peer's JVM); ``usage`` (the parent's ``wait4``) also carries the parent's own peak
    (see :func:`own_peak_rss_mib`) and is the fallback only, for a module that reports neither.
    """
    if "peak_rss_own_mib" in figures:
        return float(max(figures.pop("peak_rss_own_mib"), figures.pop("peak_rss_children_mib")))
    return usage.ru_maxrss / 1024


def main() -> None:
    cfg: Figures = json.loads(sys.argv[1])
    stage = STAGES[cfg["stage"]]
    if cfg.get("profile"):
        profiler = cProfile.Profile()
        figures = profiler.runcall(stage, cfg)
        profiler.dump_stats(cfg["profile"])
    else:
        figures = stage(cfg)
    figures["threads_at_end"] = threading.active_count()
    figures["peak_rss_own_mib"] = own_peak_rss_mib()
    figures["peak_rss_children_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(cfg["out"]).write_text(json.dumps(figures), encoding="utf-8")


if __name__ == "__main__":
    main()
