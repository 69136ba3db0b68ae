"""Every Kafka header name the pipeline writes or reads, defined once.

``regsync.*`` headers carry lineage between stages; the ``__connect.errors.*`` ones are the names Kafka
Connect's dead-letter queue writes (``DeadLetterQueueReporter``: prefix ``__connect.errors.`` + ``topic``,
``partition``, ``offset``, ``connector.name``, ``task.id``, ``stage``, ``class.name``,
``exception.class.name``, ``exception.message``, ``exception.stacktrace``), so a bureau's Connect or
ksqlDB tooling reads our DLQ as its own. Values are UTF-8 text. :mod:`regsync.kafka.rejections` builds
the DLQ set for both writers of ``registrations.rejected``.
"""

from __future__ import annotations

from typing import Final

SOURCE: Final = "regsync.source"
"""The connector (registrar system) a record came from."""
EVENT_ID: Final = "regsync.event_id"
"""The event's deterministic id (UUIDv5 of registrar, source record id and version)."""
RUN_ID: Final = "regsync.run_id"
"""The extraction run that published the record."""
RULE_ID: Final = "regsync.rule_id"
"""Repeated: one header per reject rule id of a rejected record, in sorted order (since contract v2)."""
RULE_IDS: Final = "regsync.rule_ids"
"""Legacy, read only: the comma-joined rule ids that records written before contract v2 carry."""
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
ERRORS_CONNECTOR_NAME: Final = "__connect.errors.connector.name"
"""Kafka Connect DLQ convention: which writer rejected it (``regsync-gate``, ``regsync-extract-<source>``)."""
ERRORS_TASK_ID: Final = "__connect.errors.task.id"
"""Kafka Connect DLQ convention: the task (gate instance number; 0 for an extraction)."""
ERRORS_STAGE: Final = "__connect.errors.stage"
"""Kafka Connect DLQ convention: ``TASK_POLL``, ``VALUE_CONVERTER`` or ``TRANSFORMATION`` (schemas.events.ErrorStage)."""
ERRORS_CLASS_NAME: Final = "__connect.errors.class.name"
"""Kafka Connect DLQ convention: the code that was executing (a Python qualified name)."""
ERRORS_EXCEPTION_CLASS: Final = "__connect.errors.exception.class.name"
"""Kafka Connect DLQ convention: the error's class (a Python qualified name)."""
ERRORS_EXCEPTION_MESSAGE: Final = "__connect.errors.exception.message"
"""Kafka Connect DLQ convention: the error's message (personal data masked)."""
ERRORS_EXCEPTION_STACKTRACE: Final = "__connect.errors.exception.stacktrace"
"""Kafka Connect DLQ convention; never written by regsync (a verdict has no stack, and traces echo data)."""
