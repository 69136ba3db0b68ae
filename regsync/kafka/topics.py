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


def ensure_topics(bootstrap: str, topics: Topics) -> list[str]:
    """Create missing topics (keyed by USCC, CreateTime timestamps, kept forever); returns those made."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics.all() if t not in existing]
        if wanted:
            admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=topics.partitions,
                        replication_factor=1,
                        topic_configs={"message.timestamp.type": "CreateTime", "retention.ms": "-1"},
                    )
                    for t in wanted
                ]
            )
        return wanted
    finally:
        admin.close()


def topics_from(settings: Settings) -> Topics:
    """The deployment's topics: prefix and partition count from the settings (one place)."""
    return Topics(prefix=settings.topic_prefix, partitions=settings.topic_partitions)
