"""The broker is real: consumer groups, idempotence and transactions behave as Kafka's do."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient


def _consume_all(consumer: KafkaConsumer, expected: int, max_polls: int = 40) -> list:
    got: list = []
    for _ in range(max_polls):
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
        if len(got) >= expected:
            break
    return got


def test_group_commit_close_reopen_resumes_from_committed_offset(
    kafka_bootstrap, kafka_security, new_topic, uid
):
    topic = new_topic("group")
    producer = KafkaProducer(**kafka_security, bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, key=b"k", value=f"m{i}".encode()).get(timeout=30)
    producer.close()

    group = f"g.{uid}"
    first = KafkaConsumer(
        topic,
        **kafka_security,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=4,
    )
    batch = _consume_all(first, 4)[:4]
    assert [r.value for r in batch] == [b"m0", b"m1", b"m2", b"m3"]
    tp = TopicPartition(topic, 0)
    from kafka.structs import OffsetAndMetadata

    first.commit({tp: OffsetAndMetadata(4, "", -1)})
    first.close()

    second = KafkaConsumer(
        topic,
        **kafka_security,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    rest = _consume_all(second, 6)
    second.close()
    assert [r.value for r in rest] == [f"m{i}".encode() for i in range(4, 10)]
    assert rest[0].offset == 4


def test_idempotent_producer_is_registered_with_the_broker(kafka_bootstrap, kafka_security, new_topic):
    topic = new_topic("idem")
    producer = KafkaProducer(
        **kafka_security, bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    offsets = [producer.send(topic, value=f"v{i}".encode()).get(timeout=30).offset for i in range(50)]
    producer.close()
    assert offsets == list(range(50))

    # The broker keeps producer state (id, epoch, last sequence) only for idempotent producers.
    admin = KafkaAdminClient(**kafka_security, bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_producers([TopicPartition(topic, 0)])
    finally:
        admin.close()
    text = repr(described)
    assert "producer_id" in text
    assert "last_sequence" in text
    assert "49" in text, f"last sequence 49 expected in {text}"


def test_read_committed_sees_only_committed_transactions(kafka_bootstrap, kafka_security, new_topic, uid):
    topic = new_topic("txn")
    producer = KafkaProducer(
        **kafka_security,
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"tx.{uid}",
        enable_idempotence=True,
        acks="all",
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, value=b"committed-1")
    producer.send(topic, value=b"committed-2")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"committed-3")
    producer.commit_transaction()
    producer.close()

    def read(isolation: str) -> list[bytes]:
        consumer = KafkaConsumer(
            **kafka_security,
            bootstrap_servers=kafka_bootstrap,
            isolation_level=isolation,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        values: list[bytes] = []
        for _ in range(40):
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
            if consumer.position(tp) >= end:
                break
        consumer.close()
        return values

    assert read("read_committed") == [b"committed-1", b"committed-2", b"committed-3"]
    # The aborted record really reached the log: an uncommitted reader sees it.
    assert b"aborted" in read("read_uncommitted")


def test_scan_stops_at_the_last_stable_offset_while_a_transaction_is_open(
    kafka_bootstrap, kafka_security, new_topic, uid
):
    """A writer killed mid-transaction leaves records above the LSO; a scan must end, not wait on them."""
    from regsync.kafka import bus

    topic = new_topic("open-txn")
    producer = KafkaProducer(
        **kafka_security,
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"open.{uid}",
        enable_idempotence=True,
        acks="all",
    )
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, value=b"committed")
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"pending")
    producer.flush()  # on the log, transaction left open as a SIGKILLed writer would leave it
    try:
        # offsets: 0 committed, 1 its commit marker, 2 pending -> the LSO is 2, the high watermark 3
        assert bus.end_offsets(kafka_bootstrap, topic) == {0: 2}
        assert [r.value for r in bus.scan(kafka_bootstrap, topic, {})] == [b"committed"]
        producer.commit_transaction()
        assert [r.value for r in bus.scan(kafka_bootstrap, topic, {})] == [b"committed", b"pending"]
    finally:
        producer.close()
