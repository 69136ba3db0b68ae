"""The Kafka side of the pipeline: producers that never fire-and-forget, codecs bound to registered ids.

Only the composition root talks to Kafka (docs/architecture.md); connectors, the gate logic and the sink see
events, not records.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Protocol, cast

from kafka import KafkaProducer, TopicPartition

from regsync.kafka import headers as headers_
from regsync.kafka.security import COMPONENTS, admin_client, consumer, security
from regsync.kafka.topics import Topics
from schemas.codec import AvroCodec
from schemas.contracts import TOPIC_CONTRACTS, subject_for
from schemas.errors import RetriableError
from schemas.registry import SchemaRegistryClient, codec_for_topic, register_all

log = logging.getLogger(__name__)

__all__ = ["COMPONENTS", "admin_client", "consumer", "security"]  # re-exported: one import for callers

#: How long closing a Kafka client may take before we walk away from it (issue 13 item 7).
CLOSE_TIMEOUT_S = 10.0
#: A scan's consumer gives up on one request after this long instead of kafka-python's 305 s.
REQUEST_TIMEOUT_MS = 30_000

HEADER_SOURCE = headers_.SOURCE
HEADER_EVENT_ID = headers_.EVENT_ID
HEADER_RUN_ID = headers_.RUN_ID


class KafkaRecord(Protocol):
    """What the pipeline reads of a consumed record (kafka-python's ``ConsumerRecord`` has no stubs)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes  # our topics carry no tombstones; a None value fails the codec as a record error
    headers: list[tuple[str, bytes | None]]


def close_bounded(client: object, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
    """Close a Kafka client in a daemon thread and wait at most ``timeout_s``; True if it closed.

    kafka-python's ``close()`` can block without end: the consumer's close waits on its network
    thread with no timeout, and a consumer closed during garbage collection (a generator abandoned
    by an exception) hung for minutes after PostgreSQL died under a load. A client that does not
    close in time is left to the process's exit; the caller's outcome (success or the error it is
    raising) does not wait for it.
    """
    close = getattr(client, "close", None)
    if close is None:
        return True
    errors: list[BaseException] = []

    def target() -> None:
        try:
            params = inspect.signature(close).parameters
            if "timeout_ms" in params:  # consumers and admin clients
                close(timeout_ms=int(timeout_s * 1000))
            elif "timeout" in params:  # the producer, in seconds
                close(timeout=timeout_s)
            else:
                close()
        except BaseException as exc:  # reported below; a failed close must not mask the caller's error
            errors.append(exc)

    worker = threading.Thread(target=target, name=f"close-{type(client).__name__}", daemon=True)
    worker.start()
    worker.join(timeout_s + 1.0)
    if worker.is_alive():
        log.warning(
            "%s did not close within %.0fs; leaving it to process exit", type(client).__name__, timeout_s
        )
        return False
    if errors:
        log.warning("closing %s failed: %s", type(client).__name__, errors[0])
        return False
    return True


def idempotent_producer(bootstrap: str, component: str | None = None, **overrides: object) -> KafkaProducer:
    """``acks=all`` + idempotence: broker-side de-duplication of our own retries, ordering per key."""
    config: dict[str, object] = {
        **security(component),
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        # Half a MiB, not 256 KiB (issue 12): once a partition's batch is full, kafka-python wakes
        # its sender thread (a socket write, then a turn on the interpreter lock) on EVERY send
        # until that batch leaves (`len(dq) > 1` in RecordAccumulator.append). A gate transaction
        # of 2,000 records filled 256 KiB batches and woke the sender 54,000 times per 100k
        # records; at 512 KiB 12,000 times, and the gate ran 10.07 → 9.22 s (probe, same topic).
        # A batch never exceeds this unless one record does (kafka-python starts a new batch), so it
        # stays under the broker's 1 MiB message.max.bytes.
        "batch_size": 512 * 1024,
        "max_in_flight_requests_per_connection": 5,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 120_000,
    }
    config.update(overrides)
    return KafkaProducer(**config)


@dataclass(frozen=True, slots=True)
class Codecs:
    """One codec per topic, writing under the id the registry gave our contract."""

    raw: AvroCodec
    valid: AvroCodec
    rejected: AvroCodec


def registry_client(
    registry_url: str, topics: Topics, auth: tuple[str, str] | None = None
) -> SchemaRegistryClient:
    """A client whose subjects carry the topic prefix (TopicNameStrategy on prefixed topics)."""
    return SchemaRegistryClient(registry_url, subject_prefix=topics.prefix, auth=auth)


def register_schemas(
    registry_url: str, topics: Topics, auth: tuple[str, str] | None = None
) -> list[tuple[str, int, int]]:
    """Explicit registration (production never auto-registers): (subject, version, id) per contract.

    ``auth`` is the registry admin's (user, password) when the registry authenticates writes.
    """
    with registry_client(registry_url, topics, auth) as client:
        return [(r.subject, r.contract.version, r.schema_id) for r in register_all(client)]


def compatibility_levels(registry_url: str, topics: Topics) -> dict[str, str | None]:
    """The levels as the registry reports them: ``"(global)"`` and every (prefixed) value subject."""
    with registry_client(registry_url, topics) as client:
        levels: dict[str, str | None] = {"(global)": _text(client.get_global_compatibility())}
        for topic in TOPIC_CONTRACTS:
            subject = subject_for(topic)
            levels[client.subject(subject)] = _text(client.get_compatibility(subject))
        return levels


def _text(level: object) -> str | None:
    return None if level is None else str(level)


def load_codecs(registry_url: str, topics: Topics) -> Codecs:
    """Codecs bound to registered ids; fails clearly if the schemas were never registered."""
    client = registry_client(registry_url, topics)
    return Codecs(
        raw=codec_for_topic(client, topics.base(topics.raw)),
        valid=codec_for_topic(client, topics.base(topics.valid)),
        rejected=codec_for_topic(client, topics.base(topics.rejected)),
    )


def end_offsets(bootstrap: str, topic: str, component: str | None = None) -> dict[int, int]:
    """The last stable offset of every partition of ``topic``: the end a read_committed reader can reach.

    Not the high watermark: records of a transaction still open (say, of a gate killed mid-batch,
    until its restarted successor aborts it) lie below the high watermark but above the LSO, and a
    read_committed scan up to the high watermark would wait for them forever.
    """
    reader = consumer(
        bootstrap,
        component=component,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    try:
        partitions = reader.partitions_for_topic(topic)
        if not partitions:
            raise RetriableError(f"topic {topic} has no partitions (does it exist?)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        return {tp.partition: off for tp, off in reader.end_offsets(tps).items()}
    finally:
        close_bounded(reader)


def scan(
    bootstrap: str,
    topic: str,
    start: dict[int, int],
    stop: dict[int, int] | None = None,
    component: str | None = None,
) -> Generator[KafkaRecord, None, None]:
    """Records of ``topic`` from ``start`` offsets (0 where absent) up to ``stop`` (default: the end now).

    A caller that may stop iterating early must close the generator (``contextlib.closing``), so the
    consumer is closed at once and not by the garbage collector (see :func:`close_bounded`). The
    loop is bounded: 30 empty polls in a row raise :class:`RetriableError`.
    """
    stop = stop if stop is not None else end_offsets(bootstrap, topic, component)
    todo = {p: (start.get(p, 0), end) for p, end in stop.items() if start.get(p, 0) < end}
    if not todo:
        return
    reader = consumer(
        bootstrap,
        component=component,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=2000,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    try:
        tps = {p: TopicPartition(topic, p) for p in todo}
        reader.assign(list(tps.values()))
        for p, (first, _) in todo.items():
            reader.seek(tps[p], first)
        remaining = set(todo)
        idle = 0
        while remaining:
            polled = reader.poll(timeout_ms=1000)
            if not polled:
                idle += 1
                # read_committed positions can stop short of the end on aborted tails: trust positions.
                remaining = {p for p in remaining if reader.position(tps[p]) < todo[p][1]}
                if idle > 30:
                    raise RetriableError(f"scan of {topic} stalled at partitions {sorted(remaining)}")
                continue
            idle = 0
            for tp, records in polled.items():
                end = todo[tp.partition][1]
                for record in records:
                    if record.offset >= end:
                        remaining.discard(tp.partition)
                        break
                    yield cast(KafkaRecord, record)
                if reader.position(tp) >= end:
                    remaining.discard(tp.partition)
    finally:
        close_bounded(reader)


def header(record: KafkaRecord | object, name: str) -> str | None:
    """A header value as text, or None."""
    for key, value in getattr(record, "headers", None) or ():
        if key == name:
            return value.decode("utf-8") if value is not None else None
    return None


def headers(items: Iterable[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """Kafka headers from text pairs."""
    return [(k, v.encode("utf-8")) for k, v in items]
