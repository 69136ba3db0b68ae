"""The quality gate: ``registrations.raw`` → ``registrations.valid`` | ``registrations.rejected``.

Consume-transform-produce inside Kafka transactions: for each polled batch the outputs *and* the
consumer offsets are committed in one transaction, so every raw record yields exactly one output
however often the gate is killed and restarted (readers use ``read_committed``). Judging is done a
batch at a time by :mod:`quality.record_checks`; the gate only moves records.

Valid records keep the raw record's timestamp (the moment the registrar's record was pushed), so the
monthly load's time-index window means "pushed in month M" on the valid topic as well.
Rejected records carry the rule violations in the value and Kafka Connect's full DLQ header set
(:mod:`regsync.kafka.rejections`). Their ``error_context.rejected_at`` is the raw record's timestamp —
the same as-of clock as the record's own timestamp — and the wall clock goes to ``judged_at``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from quality.record_checks import GateConfig, evaluate_many, evaluate_many_avro, schema_violation
from regsync import logs, metrics
from regsync.bookkeeping.state import StateStore
from regsync.collector import startup_objects_frozen
from regsync.faults import crash_point
from regsync.kafka import bus, headers, rejections
from regsync.kafka.topics import Topics
from regsync.settings import Settings
from schemas.codec import HEADER_SIZE, AvroCodec, CodecError, frame, read_header
from schemas.errors import RetriableError
from schemas.events import (
    ErrorContext,
    ErrorStage,
    RegistrationEvent,
    RejectedRecord,
)

SCHEMA_INVALID = "SCHEMA_INVALID"
#: The longest a transactional step (offsets, commit, abort) may wait for the brokers.
TXN_TIMEOUT_MS = 30_000
#: Transactions that may fail in a row (a broker dying under them) before the run gives up.
TXN_RETRIES = 3
#: Errors a new producer cannot cure: another gate with our transactional id is alive.
_FATAL_KAFKA: tuple[type[BaseException], ...] = (ProducerFencedError,)
#: A bounded run (--until-idle) that makes no progress this long fails instead of waiting on.
STALL_TIMEOUT_S = 120.0

log = logging.getLogger(__name__)


@dataclass(slots=True)
class GateCounts:
    """Totals of one gate run: consumed = valid + rejected, always."""

    consumed: int = 0
    valid: int = 0
    rejected: int = 0
    transactions: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)


Progress = Callable[[GateCounts], None]


GATE_CONNECTOR_NAME = "regsync-gate"
"""``__connect.errors.connector.name`` of the gate's rejections (extract's are ``regsync-extract-<source>``)."""


def _rejection_headers(
    record: Any,
    *,
    stage: ErrorStage,
    executing: object,
    error: BaseException,
    rule_ids: list[str],
    run_id: str,
    instance: int,
) -> list[tuple[str, bytes]]:
    """Kafka Connect's DLQ header set for a consumed raw record, plus our rule ids and lineage."""
    return rejections.dlq_headers(
        origin=rejections.Origin(record.topic, record.partition, record.offset),
        connector_name=GATE_CONNECTOR_NAME,
        task_id=instance,
        stage=stage,
        executing_class=rejections.qualified_name(executing),
        error=error,
        rule_ids=rule_ids,
        extra=((headers.GATE_RUN_ID, run_id),),
        kept=record.headers or (),
    )


def _lineage_headers(record: Any, run_header: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    """The raw record's ``regsync.*`` headers plus where it was judged from and by which run.

    ``run_header`` is encoded once per run, not once per record (the hot loop; issue 12).
    """
    out = [(k, v) for k, v in (record.headers or ()) if k.startswith(headers.LINEAGE_PREFIX)]
    out.append((headers.RAW_PARTITION, b"%d" % record.partition))
    out.append((headers.RAW_OFFSET, b"%d" % record.offset))
    out.append(run_header)
    return out


def _context(record: Any, run_id: str, judged_at: datetime, stage: ErrorStage) -> ErrorContext:
    """One clock: ``rejected_at`` is the raw record's timestamp (the push instant), like the output's."""
    return ErrorContext(
        record.topic,
        record.partition,
        record.offset,
        run_id,
        rejections.from_millis(record.timestamp) if (record.timestamp or -1) >= 0 else judged_at,
        judged_at=judged_at,
        stage=stage,
    )


def _same_partitioning(producer: KafkaProducer, consumer: KafkaConsumer, topics: Topics) -> bool:
    """True if raw, valid and rejected have the same number of partitions (asked once per run).

    Then an output goes to its raw record's partition number, which is where the key partitioner
    would put it anyway (extract and replay write raw by key with the same default partitioner), and
    kafka-python skips its pure-Python murmur2 hash per record. With differing counts (topics made
    before ``topic_partitions`` changed) the partitioner places every output, as before.
    """
    raw = consumer.partitions_for_topic(topics.raw)
    outs = [producer.partitions_for(t) for t in (topics.valid, topics.rejected)]
    return bool(raw) and all(o is not None and len(o) == len(raw) for o in outs)


#: The Kafka principal the gate logs in as: read raw, write valid and rejected in its transactions.
COMPONENT = "gate"


def gate_transactional_id(topics: Topics, instance: int = 0) -> str:
    """Stable per gate instance, so a restarted gate fences its zombie predecessor."""
    return f"regsync-gate-{topics.prefix or 'default'}-{instance}"


def gate_group_id(topics: Topics) -> str:
    """The gate's consumer group: its committed offsets on raw say how far the raw topic is judged."""
    return f"regsync-gate-{topics.prefix or 'default'}"


def gate_config(settings: Settings) -> GateConfig:
    """The record rules' configuration from the settings: one time zone for the whole pipeline."""
    return GateConfig(
        timezone=settings.timezone,
        family_care_capacity=settings.gate.family_care_capacity,
        min_county_confidence=settings.gate.min_county_confidence,
        disabled_rules=settings.gate.disabled_rules,
    )


def run_gate(
    *,
    bootstrap: str,
    registry_url: str,
    database_url: str,
    topics: Topics,
    config: GateConfig | None = None,
    group_id: str | None = None,
    instance: int = 0,
    until_idle: bool = True,
    max_records: int = 2000,
    progress: Progress | None = None,
) -> GateCounts:
    """Judge raw records until idle (bounded run, for Airflow) or forever (``until_idle=False``)."""
    config = config or GateConfig()
    group_id = group_id or gate_group_id(topics)
    codecs = bus.load_codecs(registry_url, topics)
    run_id = f"gate-{uuid.uuid4().hex[:12]}"
    logs.bind_run_id(run_id)
    store = StateStore(database_url)
    store.start_gate_run(run_id)
    counts = GateCounts()
    consumer = bus.consumer(
        bootstrap,
        topics.raw,
        component=COMPONENT,
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        # Static membership: a restarted gate instance takes its partitions back at once instead of
        # waiting for the killed member's session to expire.
        group_instance_id=f"gate-{instance}",
        session_timeout_ms=30_000,
        # A member learns from its heartbeat that another joined; at kafka-python's 3 s the first of
        # two workers started together kept every partition that long, and a bounded 100k run split
        # 68/32 (bench.gate_scaling: 11,170/s); at 0.5 s it splits 50/50 (13,091/s). Issue 12.
        heartbeat_interval_ms=500,
        # kafka-python's default (305 s) would let end_offsets/committed hang for minutes.
        request_timeout_ms=40_000,
    )
    producer: KafkaProducer = bus.idempotent_producer(
        bootstrap, COMPONENT, transactional_id=gate_transactional_id(topics, instance)
    )
    retries_left = TXN_RETRIES
    frozen = contextlib.ExitStack()
    try:
        producer.init_transactions()
        same_partitions = _same_partitioning(producer, consumer, topics)
        # What start-up made (division tables, codecs, clients) lives as long as the run: out of the
        # collector's way, so its full collections walk only the batches' objects (issue 12).
        frozen.enter_context(startup_objects_frozen())
        idle_polls = 0
        last_progress = time.monotonic()
        while True:
            polled = consumer.poll(timeout_ms=500)
            records = [r for batch in polled.values() for r in batch]
            _record_lag(consumer, group_id)
            if not records:
                idle_polls += 1
                if until_idle and _caught_up(consumer, idle_polls):
                    break
                if until_idle and time.monotonic() - last_progress > STALL_TIMEOUT_S:
                    raise RetriableError(
                        f"gate: no record judged for {STALL_TIMEOUT_S:.0f}s and raw is not caught up"
                    )
                continue
            idle_polls = 0
            last_progress = time.monotonic()
            try:
                _judge_in_transaction(
                    producer,
                    consumer,
                    records,
                    codecs,
                    config,
                    topics,
                    run_id,
                    counts,
                    instance=instance,
                    same_partitions=same_partitions,
                )
            except (RetriableError, KafkaError) as exc:
                # A broker died under the transaction (its coordinator, say). The batch is aborted or
                # will be: start over from the committed offsets with a fresh producer, whose
                # init_transactions fences the old one and settles its open transaction.
                if retries_left == 0 or isinstance(exc, _FATAL_KAFKA):
                    raise
                retries_left -= 1
                log.warning("gate %s: transaction failed (%s); retrying from committed offsets", run_id, exc)
                bus.close_bounded(producer, timeout_s=5)
                producer = bus.idempotent_producer(
                    bootstrap, COMPONENT, transactional_id=gate_transactional_id(topics, instance)
                )
                producer.init_transactions()
                _rewind_to_committed(consumer)
                continue
            retries_left = TXN_RETRIES
            store.update_gate_run(run_id, counts)
            if progress is not None:
                progress(counts)
    except BaseException as exc:
        frozen.close()
        try:
            store.finish_gate_run(run_id, counts, error=f"{type(exc).__name__}: {exc}")
            store.dispose()
        finally:
            bus.close_bounded(consumer)
            bus.close_bounded(producer, timeout_s=5)
        raise
    frozen.close()
    store.finish_gate_run(run_id, counts)
    store.dispose()
    bus.close_bounded(consumer)
    bus.close_bounded(producer)
    metrics.record_success("gate")
    log.info(
        "gate run %s: %d judged, %d valid, %d rejected",
        run_id,
        counts.consumed,
        counts.valid,
        counts.rejected,
    )
    return counts


def _record_lag(consumer: KafkaConsumer, group_id: str) -> None:
    """Lag per assigned partition from what the consumer already knows (no request to the brokers).

    The high watermark comes with every fetch response; the position is where the next poll
    starts. Partitions the member has not fetched from yet are left out rather than guessed.
    """
    lag: dict[str, dict[int, int]] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=0)  # already past the records just polled
        except Exception:  # no position yet: nothing to say about this partition
            continue
        if position is None:
            continue
        lag.setdefault(tp.topic, {})[tp.partition] = high - position
    for topic, per_partition in lag.items():
        metrics.record_lag(group_id, topic, per_partition)


def _rewind_to_committed(consumer: KafkaConsumer) -> None:
    """Seek every assigned partition back to the group's committed offset (the last committed batch)."""
    for tp in consumer.assignment():
        committed = consumer.committed(tp)
        if committed is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, committed)


def _caught_up(consumer: KafkaConsumer, idle_polls: int) -> bool:
    """Idle means every partition of the topic is judged, not only the ones this member holds.

    Partitions held by another member (or not yet handed back after a crash) count through the
    group's committed offsets, so a bounded run never stops while a partition is still behind.
    """
    topics = consumer.subscription() or set()
    every = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    if not every:
        return idle_polls >= 20
    assigned = consumer.assignment()
    if assigned and all(_past_highwater(consumer, tp) for tp in assigned):
        # Every partition this member holds is read to the high watermark its last fetch reported,
        # which is at or past the end a read_committed ListOffsets would give (the last stable
        # offset). Asking the broker anyway costs a wait: the request queues behind the fetch the
        # consumer keeps open on the same connection (up to fetch_max_wait_ms, ≈ 0.3–0.5 s at the
        # end of every bounded run; bench/README.md, issue 12). Partitions held by other members
        # still go by the group's committed offsets, asked of the coordinator.
        others = [tp for tp in every if tp not in assigned]
        if not others:
            return True
        return all((consumer.committed(tp) or 0) >= end for tp, end in consumer.end_offsets(others).items())
    ends = consumer.end_offsets(every)
    for tp in every:
        done = consumer.position(tp) if tp in assigned else (consumer.committed(tp) or 0)
        if done < ends[tp]:
            return False
    return True


def _past_highwater(consumer: KafkaConsumer, tp: TopicPartition) -> bool:
    """True if the position is at or past the high watermark of the partition's last fetch."""
    high = consumer.highwater(tp)
    if high is None:  # not fetched yet: no local answer
        return False
    try:
        position = consumer.position(tp, timeout_ms=0)
    except Exception:  # no position yet (kafka-python raises when it cannot reset in time)
        return False
    return position is not None and position >= high


def _bounded_txn(producer: KafkaProducer, what: str, begin: Callable[[Any], Any]) -> None:
    """A transactional step that waits at most TXN_TIMEOUT_MS (issue 13 item 7).

    kafka-python's ``send_offsets_to_transaction``/``commit_transaction``/``abort_transaction`` wait
    on their result without a timeout: with the broker gone the gate waited forever. These are the
    same three lines with a bounded wait (they reach into the producer's transaction manager and
    sender, which kafka-python does not expose otherwise).
    """
    result = begin(producer._transaction_manager)
    producer._sender.wakeup()
    if not result.wait(timeout_ms=TXN_TIMEOUT_MS):
        raise RetriableError(f"gate: could not {what} within {TXN_TIMEOUT_MS // 1000}s (is Kafka up?)")


Output = tuple[str, int, Any, bytes, list[tuple[str, bytes]], int]
"""One record to send: topic, the raw record's partition, key, value, headers, timestamp (ms)."""


def judge_records(
    records: list[Any],
    codecs: bus.Codecs,
    config: GateConfig,
    topics: Topics,
    run_id: str,
    counts: GateCounts,
    *,
    instance: int = 0,
) -> list[Output]:
    """The gate's pure path — decode, judge, encode — for one polled batch; no Kafka call.

    Every record yields exactly one output (valid or rejected), in order of judging; ``counts`` is
    updated (the caller restores it if the transaction fails). Kept apart from the transaction so
    ``bench.gate_rules`` times exactly what the gate runs. Values are encoded from ``to_wire`` (union
    branches named, same bytes as ``to_avro``).
    """
    now = datetime.now(UTC)
    run_header = (headers.GATE_RUN_ID, run_id.encode("utf-8"))  # encoded once per batch, not per record
    passthrough = _passthrough(codecs)
    decoded: list[tuple[Any, dict[str, Any]]] = []
    outputs: list[Output] = []
    for record in records:
        try:
            decoded.append((record, codecs.raw.decode(record.value)))
        except (CodecError, KeyError, ValueError, TypeError) as exc:
            violation = schema_violation(f"{type(exc).__name__}: {exc}")
            dlq = RejectedRecord(
                _context(record, run_id, now, ErrorStage.VALUE_CONVERTER),
                (violation,),
                raw_value=record.value or b"",
                decode_error=violation.message_en,
            )
            outputs.append(
                (
                    topics.rejected,
                    record.partition,
                    record.key,
                    codecs.rejected.encode(dlq.to_wire()),
                    _rejection_headers(
                        record,
                        stage=ErrorStage.VALUE_CONVERTER,
                        executing=AvroCodec,
                        error=exc,
                        rule_ids=[SCHEMA_INVALID],
                        run_id=run_id,
                        instance=instance,
                    ),
                    record.timestamp,
                )
            )
            counts.rejected += 1
            counts.by_rule[SCHEMA_INVALID] = counts.by_rule.get(SCHEMA_INVALID, 0) + 1
    # Judged on the decoded mappings: the typed model is built below only for records the gate
    # changes or rejects (issue 12; the model round trip cost more than the rules).
    verdicts = evaluate_many_avro([data for _, data in decoded], config)
    for (record, data), verdict in zip(decoded, verdicts, strict=True):
        for violation in verdict.violations:
            counts.by_rule[violation.rule_id] = counts.by_rule.get(violation.rule_id, 0) + 1
        if verdict.accepted:
            if (
                passthrough is not None
                and verdict.leaves_unchanged(data)
                and read_header(record.value) == passthrough[0]
            ):
                # Nothing to change and written with the very schema valid uses: the raw bytes are
                # what decode → to_wire → encode would give (tests/unit/test_wire_identity.py), as
                # raw is written only by extract and DLQ replay (the secure stack's ACLs), whose
                # fastavro writer encodes canonically. A foreign writer's non-canonical body (a
                # boolean byte 2, a padded varint) would be kept as written, not normalised.
                value = (
                    record.value if passthrough[1] is None else passthrough[1] + record.value[HEADER_SIZE:]
                )
            else:
                accepted = verdict.apply(
                    RegistrationEvent.from_avro(data)
                )  # county settled, warnings attached
                value = codecs.valid.encode(accepted.to_wire())
            outputs.append(
                (
                    topics.valid,
                    record.partition,
                    record.key,
                    value,
                    _lineage_headers(record, run_header),
                    record.timestamp,
                )
            )
            counts.valid += 1
        else:
            event = RegistrationEvent.from_avro(data)
            dlq = RejectedRecord(
                _context(record, run_id, now, ErrorStage.TRANSFORMATION),
                tuple(verdict.violations),
                event=event,
            )
            error = verdict.error(key=event.institution.uscc)
            outputs.append(
                (
                    topics.rejected,
                    record.partition,
                    record.key,
                    codecs.rejected.encode(dlq.to_wire()),
                    _rejection_headers(
                        record,
                        stage=ErrorStage.TRANSFORMATION,
                        # The documented header value (docs/consumers.md): the same rules, on the mapping.
                        executing=evaluate_many,
                        error=error,
                        rule_ids=list(error.rule_ids),
                        run_id=run_id,
                        instance=instance,
                    ),
                    record.timestamp,
                )
            )
            counts.rejected += 1
    return outputs


def _passthrough(codecs: bus.Codecs) -> tuple[int, bytes | None] | None:
    """When a valid record's raw bytes may be published as they are: ``(raw writer id, new header)``.

    Only if raw and valid hold the same schema (then a payload written under raw's own id decodes
    without resolution and re-encodes to the same body); the header is replaced when the registry
    gave valid's subject another id (``None``: same id, same bytes). ``None`` overall: always encode.
    """
    raw, valid = codecs.raw, codecs.valid
    if raw.schema != valid.schema:
        return None
    return raw.schema_id, (None if valid.schema_id == raw.schema_id else frame(valid.schema_id, b""))


def _judge_in_transaction(
    producer: KafkaProducer,
    consumer: KafkaConsumer,
    records: list[Any],
    codecs: bus.Codecs,
    config: GateConfig,
    topics: Topics,
    run_id: str,
    counts: GateCounts,
    *,
    instance: int = 0,
    same_partitions: bool = False,
) -> None:
    before = (counts.valid, counts.rejected, dict(counts.by_rule))  # metrics count committed batches only
    outputs = judge_records(records, codecs, config, topics, run_id, counts, instance=instance)
    next_offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        next_offsets[tp] = max(next_offsets.get(tp, 0), record.offset + 1)
    producer.begin_transaction()
    try:
        send = producer.send
        for topic, partition, key, value, hdrs, timestamp in outputs:
            send(
                topic,
                key=key,
                value=value,
                headers=hdrs,
                timestamp_ms=timestamp,
                partition=partition if same_partitions else None,
            )
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in next_offsets.items()}
        _bounded_txn(
            producer,
            "send the batch's offsets",
            lambda tm: tm.send_offsets_to_transaction(offsets, consumer.group_metadata()),
        )
        crash_point("gate.before_commit")
        _bounded_txn(producer, "commit the transaction", lambda tm: tm.begin_commit())
    except BaseException:
        # Abort so nothing of this batch is visible; the offsets were not committed either, so the
        # batch is judged again by whoever runs next. A broker that is gone cannot abort either:
        # then the restarted gate's init_transactions aborts it (same transactional id).
        counts.valid, counts.rejected, counts.by_rule = before[0], before[1], before[2]
        try:
            _bounded_txn(producer, "abort the transaction", lambda tm: tm.begin_abort())
        except Exception as abort_error:
            log.warning("gate %s: abort failed too (%s); the next run aborts it", run_id, abort_error)
        raise
    crash_point("gate.after_commit")
    counts.consumed += len(records)
    counts.transactions += 1
    metrics.record_gate_batch(
        counts.valid - before[0],
        counts.rejected - before[1],
        {
            rule: n - before[2].get(rule, 0)
            for rule, n in counts.by_rule.items()
            if n != before[2].get(rule, 0)
        },
    )
