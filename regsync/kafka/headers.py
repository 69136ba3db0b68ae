"""Every Kafka header name the pipeline writes or reads, defined once.

``regsync.*`` headers carry lineage between stages; the ``__connect.errors.*`` ones follow Kafka
Connect's dead-letter-queue convention so a bureau's Connect or ksqlDB tooling reads our DLQ as its
own. Values are UTF-8 text.
"""

from __future__ import annotations

from typing import Final

SOURCE: Final = "regsync.source"
"""The connector (registrar system) a record came from."""
EVENT_ID: Final = "regsync.event_id"
"""The event's deterministic id (UUIDv5 of registrar, source record id and version)."""
RUN_ID: Final = "regsync.run_id"
"""The extraction run that published the record."""
RULE_IDS: Final = "regsync.rule_ids"
"""Comma-separated ids of the rules a rejected record violated."""
GATE_RUN_ID: Final = "regsync.gate_run_id"
"""The gate run that judged the record."""
RAW_PARTITION: Final = "regsync.raw_partition"
"""On valid records: the raw record's partition they were judged from."""
RAW_OFFSET: Final = "regsync.raw_offset"
"""On valid records: the raw record's offset they were judged from."""
REPLAY_OF: Final = "regsync.replay_of"
"""On replayed raw records: ``<rejected topic>:<partition>:<offset>`` of the DLQ record replayed."""
REPLAY_ID: Final = "regsync.replay_id"
"""On replayed raw records: the replay (audit trail row) that sent it."""
LINEAGE_PREFIX: Final = "regsync."
"""Headers with this prefix travel from raw to the gate's outputs."""

ERRORS_TOPIC: Final = "__connect.errors.topic"
"""Kafka Connect DLQ convention: the topic the failed record was read from."""
ERRORS_PARTITION: Final = "__connect.errors.partition"
"""Kafka Connect DLQ convention: its partition."""
ERRORS_OFFSET: Final = "__connect.errors.offset"
"""Kafka Connect DLQ convention: its offset."""
