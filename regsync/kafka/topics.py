"""Topic names (with an optional prefix that isolates tests and tenants) and their creation."""

from __future__ import annotations

from dataclasses import dataclass

from regsync.settings import Settings
from schemas.contracts import TOPIC_RAW, TOPIC_REJECTED, TOPIC_VALID


@dataclass(frozen=True, slots=True)
class Topics:
    """The three pipeline topics under one prefix; subjects follow (TopicNameStrategy)."""

    prefix: str = ""
    partitions: int = 3

    @property
    def raw(self) -> str:
        """Connectors write here."""
        return self.prefix + TOPIC_RAW

    @property
    def valid(self) -> str:
        """The gate writes accepted events here."""
        return self.prefix + TOPIC_VALID

    @property
    def rejected(self) -> str:
        """The gate (and connectors, for unreadable rows) write the DLQ here."""
        return self.prefix + TOPIC_REJECTED

    def all(self) -> tuple[str, str, str]:
        """Every topic, in pipeline order."""
        return (self.raw, self.valid, self.rejected)

    def base(self, topic: str) -> str:
        """The contract topic name a prefixed topic stands for."""
        return topic.removeprefix(self.prefix)


def replication_for(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers``.

    Three or more brokers: every record on 3 brokers, a write acknowledged (``acks=all``) once 2 hold
    it, so one broker may die without losing an acknowledged record or stopping the writers.
    """
    replication = min(3, max(1, brokers))
    return replication, (2 if replication >= 3 else 1)


def ensure_topics(bootstrap: str, topics: Topics) -> list[str]:
    """Create missing topics (keyed by USCC, CreateTime timestamps, kept forever); returns those made.

    Replication follows the cluster's size (:func:`replication_for`): 1 on a single dev broker,
    3 with ``min.insync.replicas`` 2 on three brokers or more. New topics are returned once every partition has a leader.
    """
    from kafka.admin import NewTopic

    from regsync.kafka.security import admin_client

    admin = admin_client(bootstrap, request_timeout_ms=30_000)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics.all() if t not in existing]
        if wanted:
            brokers = len(admin.describe_cluster().get("brokers") or [None])
            replication, min_isr = replication_for(brokers)
            admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=topics.partitions,
                        replication_factor=replication,
                        topic_configs={
                            "message.timestamp.type": "CreateTime",
                            "retention.ms": "-1",
                            "min.insync.replicas": str(min_isr),
                        },
                    )
                    for t in wanted
                ]
            )
            # CreateTopics is acknowledged before the brokers' metadata knows the topics: wait (the
            # library's bounded poll) until each new partition has a leader. Only the topics made
            # here: a component's login may not describe the others, and they are long settled.
            admin.wait_for_topics(wanted, timeout_ms=30_000)
        return wanted
    finally:
        admin.close()


def topics_from(settings: Settings) -> Topics:
    """The deployment's topics: prefix and partition count from the settings (one place)."""
    return Topics(prefix=settings.topic_prefix, partitions=settings.topic_partitions)
