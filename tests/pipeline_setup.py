"""One place for the set-up most integration tests repeat: their own topics, contracts and job arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regsync.kafka import bus
from regsync.kafka.topics import Topics, ensure_topics
from regsync.stack.launcher import Endpoints


def pipeline_params(
    stack: Endpoints, database_url: str, topics: Topics, login: Callable[[Topics], None] | None = None
) -> dict[str, Any]:
    """Create ``topics``, register the contracts under them, and return the keyword arguments every job takes.

    ``login`` is the ``as_components`` fixture: on a secure session the jobs then run as their own principals.
    """
    if login is not None:
        login(topics)
    ensure_topics(stack.bootstrap_servers, topics)
    bus.register_schemas(stack.registry_url, topics)
    return {
        "bootstrap": stack.bootstrap_servers,
        "registry_url": stack.registry_url,
        "database_url": database_url,
        "topics": topics,
    }
