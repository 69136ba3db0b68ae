"""Pure pieces of the gate's scale-out and hot loop: worker counts, partition mapping, lineage headers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from regsync.kafka import headers
from regsync.kafka.topics import Topics
from regsync.stages.gate import _lineage_headers, _same_partitioning
from regsync.stages.gate_workers import default_workers, run_gate_workers


@pytest.mark.parametrize(
    ("partitions", "cpus", "expected"),
    [(6, 2, 2), (6, 16, 6), (1, 8, 1), (3, 1, 1)],
)
def test_default_workers_is_one_per_core_but_no_more_than_partitions(partitions, cpus, expected):
    assert default_workers(partitions, cpus) == expected


def test_run_gate_workers_refuses_zero():
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_gate_workers(0)


class _Meta:
    def __init__(self, counts):
        self.counts = counts

    def partitions_for_topic(self, topic):
        n = self.counts.get(topic)
        return None if n is None else set(range(n))

    partitions_for = partitions_for_topic


def test_outputs_keep_the_raw_partition_only_when_every_topic_has_as_many():
    topics = Topics(prefix="x.")
    same = _Meta({topics.raw: 6, topics.valid: 6, topics.rejected: 6})
    assert _same_partitioning(same, same, topics) is True
    fewer = _Meta({topics.raw: 6, topics.valid: 3, topics.rejected: 6})
    assert _same_partitioning(fewer, fewer, topics) is False  # the key partitioner places them
    unknown = _Meta({topics.raw: 6})
    assert _same_partitioning(unknown, unknown, topics) is False


def test_lineage_headers_keep_regsync_headers_and_add_where_and_who():
    record = SimpleNamespace(
        partition=4,
        offset=1234,
        headers=[(headers.SOURCE, b"bianzhi"), ("other", b"x"), (headers.EVENT_ID, b"e1")],
    )
    out = _lineage_headers(record, (headers.GATE_RUN_ID, b"gate-1"))
    assert out == [
        (headers.SOURCE, b"bianzhi"),
        (headers.EVENT_ID, b"e1"),
        (headers.RAW_PARTITION, b"4"),
        (headers.RAW_OFFSET, b"1234"),
        (headers.GATE_RUN_ID, b"gate-1"),
    ]
    assert record.headers[1] == ("other", b"x")  # the consumed record is left as it was
