"""One place for the set-up most integration tests repeat: their own topics, contracts and job arguments."""

from __future__ import annotations

from typing import Any

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stack.launcher import Endpoints


def pipeline_params(stack: Endpoints, database_url: str, topics: Topics) -> dict[str, Any]:
    """Create ``topics``, register the contracts under them, and return the keyword arguments every job takes."""
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    return {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": database_url,
        "topics": topics,
    }
